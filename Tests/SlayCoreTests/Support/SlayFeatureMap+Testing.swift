@testable import SlayCore

extension SlayFeatureMap {
    /// The Nyström whitening W (P, P) of the map's estimator, or [] for the other polynomials.
    var nystromWhitening: [Float] {
        ((polynomial as? SlayNystromPolynomial)?.whitening).map { Array($0) } ?? []
    }
}

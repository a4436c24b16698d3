/// Size arithmetic that reports overflow as a SlayError instead of trapping the host process.
public enum CheckedSize {
    public static func multiply(_ values: Int..., what: @autoclosure () -> String) throws -> Int {
        var result = 1
        for value in values {
            let (product, overflow) = result.multipliedReportingOverflow(by: value)
            if overflow { throw SlayError.overflow("\(what()) does not fit in 64 bits") }
            result = product
        }
        return result
    }

    public static func add(_ a: Int, _ b: Int, what: @autoclosure () -> String) throws -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        if overflow { throw SlayError.overflow("\(what()) does not fit in 64 bits") }
        return sum
    }
}

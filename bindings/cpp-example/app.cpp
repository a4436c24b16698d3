// A C++17 program using an installed libslay (scripts/install.sh --prefix DIR), built either with
//   c++ -std=c++17 app.cpp $(pkg-config --cflags --libs libslay) -Wl,-rpath,DIR/lib
// or with CMake: find_package(libslay REQUIRED) + target_link_libraries(app libslay::slay) (see
// CMakeLists.txt). The tests build it both ways, with g++ and clang++ and every warning an error.
// Const input buffers go in through slay_tensor_4d_const, so no cast is needed.
#include <slay.h>

#include <cmath>
#include <cstdio>
#include <vector>

namespace {

// The library's status as a message; true when the call succeeded.
bool ok(int32_t status, const slay_error& err, const char* what) {
    if (status == SLAY_OK) return true;
    std::fprintf(stderr, "%s: %s: %s\n", what, slay_status_string(status), err.message);
    return false;
}

}  // namespace

int main() {
    if (slay_abi_version() != SLAY_ABI_VERSION) {
        std::fprintf(stderr, "libslay ABI %d, header ABI %d\n", slay_abi_version(), SLAY_ABI_VERSION);
        return 1;
    }
    constexpr int64_t B = 1, T = 32, H = 2, d = 16, dv = 8;
    std::vector<float> q_data(B * T * H * d), k_data(q_data.size()), v_data(B * T * H * dv), y_data(v_data.size());
    for (size_t i = 0; i < q_data.size(); ++i) {
        q_data[i] = std::sin(0.37f * static_cast<float>(i));
        k_data[i] = std::cos(0.11f * static_cast<float>(i));
    }
    for (size_t i = 0; i < v_data.size(); ++i) v_data[i] = static_cast<float>(i % 5) - 2.0f;
    const std::vector<float>& q_in = q_data;   // read-only views of the inputs
    const std::vector<float>& k_in = k_data;
    const std::vector<float>& v_in = v_data;

    slay_error err;
    slay_feature_map_params params;
    if (!ok(slay_feature_map_params_init(&params), err, "params_init")) return 1;
    params.head_dim = d;
    params.num_heads = H;
    params.poly = SLAY_POLY_EXACT;
    slay_feature_map* fm = nullptr;
    if (!ok(slay_feature_map_create(&params, &fm, &err), err, "feature_map_create")) return 1;

    const slay_tensor q = slay_tensor_4d_const(q_in.data(), B, T, H, d);
    const slay_tensor k = slay_tensor_4d_const(k_in.data(), B, T, H, d);
    const slay_tensor v = slay_tensor_4d_const(v_in.data(), B, T, H, dv);
    const slay_tensor y = slay_tensor_4d(y_data.data(), B, T, H, dv);
    slay_attention_options options;
    if (!ok(slay_attention_options_init(&options), err, "options_init")) return 1;
    const int32_t status = slay_linear_attention(fm, &q, &k, &v, &y, &options, &err);
    slay_feature_map_free(fm);
    if (!ok(status, err, "linear_attention")) return 1;
    // Kernel-normalised attention averages the values: every output lies within their range.
    for (float value : y_data) {
        if (!(value >= -2.0f - 1e-4f && value <= 2.0f + 1e-4f)) {
            std::fprintf(stderr, "output %g outside the values' range\n", static_cast<double>(value));
            return 1;
        }
    }
    std::printf("libslay %s (ABI %d, %s kernels): y[0] = %g\n", slay_version_string(), slay_abi_version(),
                slay_kernel_variant(), static_cast<double>(y_data[0]));
    return 0;
}

// conv.cu: the sliding-window copies convolution and pooling are built on: unfold (im2col) and
// its adjoint fold (col2im). One thread per output element, no atomics: fold gathers the
// column entries that land on its input element and sums them in a fixed order.
//
// Geometry table `g` (a device array of 14 int64, the same for both kernels):
//   g[0..4)   batch N, channels C, height H, width W of the image [N, C, H, W]
//   g[4..6)   kernel kh, kw
//   g[6..8)   stride sh, sw (≥ 1)
//   g[8..10)  padding ph, pw
//   g[10..12) dilation dh, dw (≥ 1)
//   g[12..14) output oh, ow (the number of window positions along each axis)
// Columns are [N, C·kh·kw, oh·ow] (torch.nn.functional.unfold's layout): the row of (c, i, j)
// is (c·kh + i)·kw + j, the column of (y, x) is y·ow + x; the window at (y, x) reads image row
// y·sh − ph + i·dh and column x·sw − pw + j·dw.
// Launch: 1D, any grid (grid-stride loops), block CV_BLOCK_1D.

// unfold_{dt}(const T* x, T* cols, size_t n, const long long* g, T fill)
//   n = N·C·kh·kw·oh·ow; cols[i] = the image element under window entry i, or `fill` where
//   the window lies in the padding (0 for convolution, −inf for max pooling).
#define CV_UNFOLD_KERNEL(dt, T)                                                              \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) unfold_##dt(                  \
        const T* x, T* cols, size_t n, const long long* g, T fill) {                         \
        const cv_i64 C = g[1], H = g[2], W = g[3], kh = g[4], kw = g[5];                     \
        const cv_i64 oh = g[12], ow = g[13];                                                 \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {                  \
            cv_i64 r = (cv_i64)i;                                                            \
            const cv_i64 ox = r % ow;                                                        \
            r /= ow;                                                                         \
            const cv_i64 oy = r % oh;                                                        \
            r /= oh;                                                                         \
            const cv_i64 kj = r % kw;                                                        \
            r /= kw;                                                                         \
            const cv_i64 ki = r % kh;                                                        \
            r /= kh;                                                                         \
            const cv_i64 c = r % C;                                                          \
            const cv_i64 b = r / C;                                                          \
            const cv_i64 y = oy * g[6] - g[8] + ki * g[10];                                  \
            const cv_i64 xx = ox * g[7] - g[9] + kj * g[11];                                 \
            T v = fill;                                                                      \
            if (y >= 0 && y < H && xx >= 0 && xx < W) {                                      \
                v = x[((b * C + c) * H + y) * W + xx];                                       \
            }                                                                                \
            cols[i] = v;                                                                     \
        }                                                                                    \
    }
CV_FOR_EACH_DTYPE(CV_UNFOLD_KERNEL)

// fold_{dt}(const T* cols, T* x, size_t n, const long long* g)
//   n = N·C·H·W; x[b, c, y, x] = Σ over the window entries (i, j) and positions (oy, ox) that
//   read it of cols[b, (c·kh + i)·kw + j, oy·ow + ox], summed in increasing (i, j) order.
#define CV_FOLD_KERNEL(dt, T)                                                                \
    extern "C" __global__ void __launch_bounds__(CV_BLOCK_1D) fold_##dt(                    \
        const T* cols, T* x, size_t n, const long long* g) {                                 \
        const cv_i64 H = g[2], W = g[3], kh = g[4], kw = g[5];                            \
        const cv_i64 sh = g[6], sw = g[7], ph = g[8], pw = g[9], dh = g[10], dw = g[11];     \
        const cv_i64 oh = g[12], ow = g[13];                                                 \
        for (cv_u64 i = cv_global_index(); i < n; i += cv_grid_stride()) {                  \
            cv_i64 r = (cv_i64)i;                                                            \
            const cv_i64 xx = r % W;                                                         \
            r /= W;                                                                          \
            const cv_i64 y = r % H;                                                          \
            const cv_i64 bc = r / H;                                                         \
            T acc = T(0);                                                                    \
            for (cv_i64 ki = 0; ki < kh; ++ki) {                                             \
                const cv_i64 ty = y + ph - ki * dh;                                          \
                if (ty < 0 || ty % sh != 0 || ty / sh >= oh) {                               \
                    continue;                                                                \
                }                                                                            \
                for (cv_i64 kj = 0; kj < kw; ++kj) {                                         \
                    const cv_i64 tx = xx + pw - kj * dw;                                     \
                    if (tx < 0 || tx % sw != 0 || tx / sw >= ow) {                           \
                        continue;                                                            \
                    }                                                                        \
                    acc += cols[((bc * kh + ki) * kw + kj) * (oh * ow) + (ty / sh) * ow +    \
                                tx / sw];                                                    \
                }                                                                            \
            }                                                                                \
            x[i] = acc;                                                                      \
        }                                                                                    \
    }
CV_FOR_EACH_DTYPE(CV_FOLD_KERNEL)

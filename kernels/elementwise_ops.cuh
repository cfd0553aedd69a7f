// elementwise_ops.cuh: the one formula of every elementwise op, prepended (after common.cuh)
// to every family's source and used by elementwise.cu (one kernel per op) and fused.cu (every op
// by its code in one interpreter).
//
// Each list is an X-macro: CV_UNARY_OPS(X) expands X(name, expression) once per op, one line per
// op. The position of an op in its list is its code in fused programs; the Rust side reads the
// names from this file (`curvature_kernels::elementwise_op_names`), so both sides number the ops
// alike. Adding an op is one line of its list (no comments inside the lists: they are macros).
//   unary:   an expression of x, the parameters p0 and p1, and the element type T
//            (p0/p1 are the parameters of powf, affine, leaky_relu, elu, clamp and between)
//   binary:  an expression of a, b and T
//   ternary: an expression of a, b, c and T
//
// What each computes:
//   neg −x | exp eˣ | log ln x | sin | cos | sqrt | abs |x| | tanh | sigmoid 1/(1+e^−x)
//   square x² | sign (−1, 0 or 1; zero keeps its sign, NaN stays NaN) | reciprocal 1/x
//   softplus ln(1 + eˣ) as max(x, 0) + log1p(e^−|x|)
//   step (1 if x > 0 else 0) | relu max(x, 0) (NaN stays NaN) | gelu x·Φ(x) through erf
//   gelu_tanh x·(1 + tanh(√(2/π)(x + 0.044715x³)))/2 | silu x·σ(x) | erf | rsqrt 1/√x
//   log1p ln(1 + x) | expm1 eˣ − 1
//   powf x^p0 | affine x·p0 + p1 | leaky_relu (x if x > 0 else p0·x)
//   elu (x if x > 0 else p0·(eˣ − 1)) | clamp min(max(x, p0), p1) (NaN stays NaN)
//   between (1 if p0 ≤ x ≤ p1 else 0)
//   add a+b | sub a−b | mul a·b | div a/b | eq_mask (1 if a == b else 0)
//   tanh_backward a·(1 − b²)      (a = incoming gradient g, b = tanh output y)
//   sigmoid_backward a·b·(1 − b)  (a = g, b = sigmoid output y)
//   maximum, minimum (NaN if either is NaN) | pow a^b
//   tanh_backward_grad_y (a = gg, b = g, c = y): −2·y·g·gg
//     (∂/∂y of tanh_backward(g, y) = g(1 − y²), applied to the incoming gradient gg)
//   sigmoid_backward_grad_y (a = gg, b = g, c = y): gg·g·(1 − 2y)
//     (∂/∂y of sigmoid_backward(g, y) = g·y(1 − y))
//   where_cond (a = mask, b = on_true, c = on_false): b where a != 0 (NaN counts as nonzero),
//     else c

#define CV_UNARY_OPS(X) \
    X(neg, -x) \
    X(exp, cv_exp(x)) \
    X(log, cv_log(x)) \
    X(sin, cv_sin(x)) \
    X(cos, cv_cos(x)) \
    X(sqrt, cv_sqrt(x)) \
    X(abs, cv_abs(x)) \
    X(tanh, cv_tanh(x)) \
    X(sigmoid, cv_sigmoid(x)) \
    X(square, x * x) \
    X(sign, x > T(0) ? T(1) : (x < T(0) ? T(-1) : x)) \
    X(reciprocal, T(1) / x) \
    X(softplus, (x > T(0) ? x : T(0)) + log1p(cv_exp(-cv_abs(x)))) \
    X(step, x > T(0) ? T(1) : T(0)) \
    X(relu, x < T(0) ? T(0) : x) \
    X(gelu, T(0.5) * x * (T(1) + cv_erf(x * T(0.70710678118654752440)))) \
    X(gelu_tanh, T(0.5) * x * (T(1) + cv_tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)))) \
    X(silu, x * cv_sigmoid(x)) \
    X(erf, cv_erf(x)) \
    X(rsqrt, T(1) / cv_sqrt(x)) \
    X(log1p, cv_log1p(x)) \
    X(expm1, cv_expm1(x)) \
    X(powf, cv_pow(x, p0)) \
    X(affine, x * p0 + p1) \
    X(leaky_relu, x > T(0) ? x : x * p0) \
    X(elu, x > T(0) ? x : p0 * cv_expm1(x)) \
    X(clamp, (x < p0 ? p0 : x) > p1 ? p1 : (x < p0 ? p0 : x)) \
    X(between, (x >= p0 && x <= p1) ? T(1) : T(0))

#define CV_BINARY_OPS(X) \
    X(add, a + b) \
    X(sub, a - b) \
    X(mul, a * b) \
    X(div, a / b) \
    X(eq_mask, a == b ? T(1) : T(0)) \
    X(tanh_backward, a * (T(1) - b * b)) \
    X(sigmoid_backward, a * b * (T(1) - b)) \
    X(maximum, (a > b || a != a) ? a : b) \
    X(minimum, (a < b || a != a) ? a : b) \
    X(pow, cv_pow(a, b))

#define CV_TERNARY_OPS(X) \
    X(tanh_backward_grad_y, T(-2) * c * b * a) \
    X(sigmoid_backward_grad_y, a * b * (T(1) - T(2) * c)) \
    X(where_cond, a != T(0) ? b : c)

// One functor per op: UnaryOp_{name}::apply<T>(x, p0, p1), BinaryOp_{name}::apply<T>(a, b),
// TernaryOp_{name}::apply<T>(a, b, c).
#define CV_UNARY_FUNCTOR(name, expr)                                  \
    struct UnaryOp_##name {                                           \
        template <class T>                                            \
        __device__ __forceinline__ static T apply(T x, T p0, T p1) { \
            (void)p0;                                                 \
            (void)p1;                                                 \
            return (expr);                                            \
        }                                                             \
    };
#define CV_BINARY_FUNCTOR(name, expr)                          \
    struct BinaryOp_##name {                                   \
        template <class T>                                     \
        __device__ __forceinline__ static T apply(T a, T b) { \
            return (expr);                                     \
        }                                                      \
    };
#define CV_TERNARY_FUNCTOR(name, expr)                              \
    struct TernaryOp_##name {                                       \
        template <class T>                                          \
        __device__ __forceinline__ static T apply(T a, T b, T c) { \
            return (expr);                                          \
        }                                                           \
    };
CV_UNARY_OPS(CV_UNARY_FUNCTOR)
CV_BINARY_OPS(CV_BINARY_FUNCTOR)
CV_TERNARY_OPS(CV_TERNARY_FUNCTOR)

// The op codes: each op's position in its list (cv_unary_code_{name}, …).
#define CV_UNARY_CODE(name, expr) cv_unary_code_##name,
#define CV_BINARY_CODE(name, expr) cv_binary_code_##name,
#define CV_TERNARY_CODE(name, expr) cv_ternary_code_##name,
enum cv_unary_code { CV_UNARY_OPS(CV_UNARY_CODE) cv_unary_count };
enum cv_binary_code { CV_BINARY_OPS(CV_BINARY_CODE) cv_binary_count };
enum cv_ternary_code { CV_TERNARY_OPS(CV_TERNARY_CODE) cv_ternary_count };

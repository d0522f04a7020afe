// Fused CPU kernels for the pair attention of a Roost message layer (pretroost.models.kernels).
//
// One composition at a time (parallel over the batch), all heads: gate MLP on every pair, weighted
// softmax over neighbours, attention-weighted sum of message hidden layers, and the backward of all
// of it. Each composition's first-layer rows are first gathered into a small float buffer (from the
// (B*N, 2HD) first layers, or for layer 0 from the rows of the distinct elements plus the rank-1
// fractional-weight term), so pair values are recomputed from cache-resident node data and never
// stored: memory traffic is O(B*N*H*D) instead of O(B*N^2*H*D). The backward accumulates each
// composition's gradient in cache and writes it once. Node tensors may be fp32 or bf16 (autocast);
// arithmetic is fp32; inner loops over the hidden units are vectorised by the compiler (omp simd).
//
// Built by torch.utils.cpp_extension.load on first use; see kernels.py for the build key.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace {

constexpr float kSlope = 0.01f;  // LeakyReLU negative slope (torch's default)
constexpr float kEps = 1e-10f;   // softmax denominator guard, as in the reference Roost

// Node tensors (first layers, P, their gradients) are float or bfloat16 bits (uint16_t);
// arithmetic is float. bf16 stores round to nearest even.
inline float ld(const float* p, int64_t k) { return p[k]; }
inline float ld(const uint16_t* p, int64_t k) {
  const uint32_t u = static_cast<uint32_t>(p[k]) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline void st(float* p, int64_t k, float v) { p[k] = v; }
inline void st(uint16_t* p, int64_t k, float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  const uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  p[k] = static_cast<uint16_t>(v != v ? 0x7FC0u : r);
}

// The first layer of one attention MLP on [h_i || h_j], for all heads, as stored by
// MultiHeadMLP: weight (H, D, 2F), so x @ weight.view(2HD, F).T gives per node the interleaved
// row [h][d][self, neighbour] of length 2HD. Rows are given directly, (B*N, 2HD), or factored
// (layer 0): row(node) = U[inv[node]] + w[node] * wcol, U (n_unique, 2HD).
template <typename T>
struct Half {
  const T* rows;
  const float* wcol;  // factored only, else nullptr
  const float* bias;  // (H*D), added to the neighbour half
  int64_t D;
};

struct Dims {
  int64_t B, N, H, Dg, Dm;
  // local (per composition, float) layout per node: [gate self | gate nbr | msg self | msg nbr]
  int64_t R() const { return 2 * H * (Dg + Dm); }
  int64_t gn() const { return H * Dg; }
  int64_t ms() const { return 2 * H * Dg; }
  int64_t mn() const { return 2 * H * Dg + H * Dm; }
};

inline int64_t valid_slots(const bool* m, int64_t N, int64_t* out) {
  int64_t n = 0;
  for (int64_t j = 0; j < N; ++j) {
    if (m[j]) out[n++] = j;
  }
  return n;
}

// de-interleave one node's row of one MLP into self (HD) and neighbour (HD) parts, + bias
template <typename T>
inline void gather_row(const Half<T>& hf, int64_t H, int64_t node, int64_t row_id, float wv,
                       float* __restrict__ self, float* __restrict__ nbr) {
  const int64_t HD = H * hf.D;
  const T* __restrict__ r = hf.rows + row_id * 2 * HD;
  const float* __restrict__ b = hf.bias;
  if (hf.wcol == nullptr) {
#pragma omp simd
    for (int64_t q = 0; q < HD; ++q) {
      self[q] = ld(r, 2 * q);
      nbr[q] = ld(r, 2 * q + 1) + b[q];
    }
  } else {
    const float* __restrict__ c = hf.wcol;
#pragma omp simd
    for (int64_t q = 0; q < HD; ++q) {
      self[q] = ld(r, 2 * q) + wv * c[2 * q];
      nbr[q] = (ld(r, 2 * q + 1) + wv * c[2 * q + 1]) + b[q];
    }
  }
  (void)node;
}

template <typename T>
void load_composition(const Dims& d, const Half<T>& g, const Half<T>& m, const int64_t* inv,
                      const float* w, int64_t b, const int64_t* idx, int64_t n, float* L) {
  const int64_t R = d.R();
  for (int64_t ii = 0; ii < n; ++ii) {
    const int64_t i = idx[ii], node = b * d.N + i;
    const int64_t row = inv != nullptr ? inv[node] : node;
    const float wv = w != nullptr ? w[node] : 0.f;
    gather_row(g, d.H, node, row, wv, L + i * R, L + i * R + d.gn());
    gather_row(m, d.H, node, row, wv, L + i * R + d.ms(), L + i * R + d.mn());
  }
}

// scatter one node's local gradient (self | neighbour of one MLP) back to the interleaved layout
inline void scatter_row(const float* __restrict__ self, const float* __restrict__ nbr, int64_t HD,
                        float* __restrict__ dst, float* __restrict__ dwcol, float wv,
                        float* __restrict__ dbias) {
#pragma omp simd
  for (int64_t q = 0; q < HD; ++q) {
    dst[2 * q] += self[q];
    dst[2 * q + 1] += nbr[q];
    dbias[q] += nbr[q];
  }
  if (dwcol != nullptr) {
#pragma omp simd
    for (int64_t q = 0; q < HD; ++q) {
      dwcol[2 * q] += wv * self[q];
      dwcol[2 * q + 1] += wv * nbr[q];
    }
  }
}

template <typename T>
inline void store_row(const float* __restrict__ self, const float* __restrict__ nbr, int64_t HD,
                      T* __restrict__ dst, float* __restrict__ dbias) {
#pragma omp simd
  for (int64_t q = 0; q < HD; ++q) {
    st(dst, 2 * q, self[q]);
    st(dst, 2 * q + 1, nbr[q]);
    dbias[q] += nbr[q];
  }
}

template <typename T>
void forward_impl(const Dims& d, const Half<T>& g, const Half<T>& m, const int64_t* inv,
                  const float* w, const float* w2p, const float* b2p, const float* wpp,
                  const bool* mp, T* Pp, float* asp, float* Ap, float* Qp) {
  const int64_t N = d.N, H = d.H, Dg = d.Dg, Dm = d.Dm, R = d.R();
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    std::vector<int64_t> idx(N);
    std::vector<float> e(N), u(N), acc_p(Dm), loc(N * R);
    float* __restrict__ p = acc_p.data();
    const float* L = loc.data();
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = valid_slots(mp + b * N, N, idx.data());
      load_composition(d, g, m, inv, w, b, idx.data(), n, loc.data());
      for (int64_t k = 0; k < N * H * Dm; ++k) st(Pp + b * N * H * Dm, k, 0.f);
      std::memset(asp + b * N * H, 0, sizeof(float) * N * H);
      if (Ap != nullptr) {
        std::memset(Ap + b * N * N * H, 0, sizeof(float) * N * N * H);
        std::memset(Qp + b * N * N * H, 0, sizeof(float) * N * N * H);
      }
      for (int64_t ii = 0; ii < n; ++ii) {
        const int64_t i = idx[ii];
        for (int64_t h = 0; h < H; ++h) {
          const float* __restrict__ sg = L + i * R + h * Dg;
          const float* __restrict__ wh = w2p + h * Dg;
          float gmax = -std::numeric_limits<float>::infinity();
          for (int64_t jj = 0; jj < n; ++jj) {
            const float* __restrict__ tg = L + idx[jj] * R + d.gn() + h * Dg;
            float acc = 0.f;
#pragma omp simd reduction(+ : acc)
            for (int64_t k = 0; k < Dg; ++k) {
              const float v = sg[k] + tg[k];
              acc += wh[k] * (v > 0.f ? v : kSlope * v);
            }
            e[jj] = acc + b2p[h];
            gmax = std::max(gmax, e[jj]);
          }
          float Z = 0.f;
          for (int64_t jj = 0; jj < n; ++jj) {
            e[jj] = std::exp(e[jj] - gmax);
            u[jj] = wpp[(b * N + idx[jj]) * H + h] * e[jj];
            Z += u[jj];
          }
          Z += kEps;
          const float* __restrict__ sm = L + i * R + d.ms() + h * Dm;
          std::fill(acc_p.begin(), acc_p.end(), 0.f);
          float as = 0.f;
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t j = idx[jj];
            const float a = u[jj] / Z;
            as += a;
            if (Ap != nullptr) {
              Ap[((b * N + i) * N + j) * H + h] = a;
              Qp[((b * N + i) * N + j) * H + h] = e[jj] / Z;
            }
            const float* __restrict__ tm = L + j * R + d.mn() + h * Dm;
#pragma omp simd
            for (int64_t k = 0; k < Dm; ++k) {
              const float v = sm[k] + tm[k];
              p[k] += a * (v > 0.f ? v : kSlope * v);
            }
          }
          T* __restrict__ out = Pp + ((b * N + i) * H + h) * Dm;
#pragma omp simd
          for (int64_t k = 0; k < Dm; ++k) st(out, k, p[k]);
          asp[(b * N + i) * H + h] = as;
        }
      }
    }
  });
}

// Gradients: dG, dM (rows of the direct layout, or the per-unique rows when factored), per-thread
// accumulators acc = [dw2 (H*Dg) | dbg (H*Dg) | dbm (H*Dm) | dwcol_g (2H*Dg) | dwcol_m (2H*Dm) |
// dU_g (n_unique*2H*Dg) | dU_m (n_unique*2H*Dm)] (the last three only when factored).
template <typename T>
void backward_impl(const Dims& d, const Half<T>& g, const Half<T>& m, const int64_t* inv,
                   const float* w, int64_t n_unique, const float* w2p, const bool* mp,
                   const float* Ap, const float* Qp, const T* dPp, const float* dap, T* dG, T* dM,
                   float* dwpp, float* accp, int64_t acc_len, int64_t nt) {
  const int64_t N = d.N, H = d.H, Dg = d.Dg, Dm = d.Dm, R = d.R();
  const bool factored = inv != nullptr;
  at::parallel_for(0, d.B, 1, [&](int64_t b0, int64_t b1) {
    const int64_t tid = std::min<int64_t>(at::get_thread_num(), nt - 1);
    float* acc = accp + tid * acc_len;
    float* __restrict__ dw2 = acc;
    float* dbg = dw2 + H * Dg;
    float* dbm = dbg + H * Dg;
    float* dcg = dbm + H * Dm;
    float* dcm = dcg + 2 * H * Dg;
    float* dUg = dcm + 2 * H * Dm;
    float* dUm = dUg + n_unique * 2 * H * Dg;
    std::vector<int64_t> idx(N);
    std::vector<float> da(N), dpf(Dm), loc(N * R), dloc(N * R);
    const float* L = loc.data();
    float* DL = dloc.data();
    float* __restrict__ dp = dpf.data();
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n = valid_slots(mp + b * N, N, idx.data());
      load_composition(d, g, m, inv, w, b, idx.data(), n, loc.data());
      std::fill(dloc.begin(), dloc.end(), 0.f);
      for (int64_t ii = 0; ii < n; ++ii) {
        const int64_t i = idx[ii];
        for (int64_t h = 0; h < H; ++h) {
          const int64_t ih = (b * N + i) * H + h;
          const T* __restrict__ dPi = dPp + ih * Dm;
#pragma omp simd
          for (int64_t k = 0; k < Dm; ++k) dp[k] = ld(dPi, k);
          const float* __restrict__ sm = L + i * R + d.ms() + h * Dm;
          float* __restrict__ dsm = DL + i * R + d.ms() + h * Dm;
          float c = 0.f;
          // message half: d attention, d pre-activations (recomputed)
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t j = idx[jj];
            const float a = Ap[((b * N + i) * N + j) * H + h];
            const float* __restrict__ tm = L + j * R + d.mn() + h * Dm;
            float* __restrict__ dtm = DL + j * R + d.mn() + h * Dm;
            float s_acc = 0.f;
#pragma omp simd reduction(+ : s_acc)
            for (int64_t k = 0; k < Dm; ++k) {
              const float pre = sm[k] + tm[k];
              const bool pos = pre > 0.f;
              s_acc += dp[k] * (pos ? pre : kSlope * pre);
              const float gr = a * dp[k] * (pos ? 1.f : kSlope);
              dsm[k] += gr;
              dtm[k] += gr;
            }
            da[jj] = s_acc + dap[ih];
            c += a * da[jj];
          }
          // weighted softmax -> d gate logits, d w^p; then the gate half
          const float* __restrict__ sg = L + i * R + h * Dg;
          float* __restrict__ dsg = DL + i * R + h * Dg;
          const float* __restrict__ wh = w2p + h * Dg;
          float* __restrict__ dwh = dw2 + h * Dg;
          for (int64_t jj = 0; jj < n; ++jj) {
            const int64_t j = idx[jj];
            const int64_t ijh = ((b * N + i) * N + j) * H + h;
            const float diff = da[jj] - c;
            const float dg = Ap[ijh] * diff;
            dwpp[(b * N + j) * H + h] += Qp[ijh] * diff;
            if (dg == 0.f) continue;
            const float* __restrict__ tg = L + j * R + d.gn() + h * Dg;
            float* __restrict__ dtg = DL + j * R + d.gn() + h * Dg;
#pragma omp simd
            for (int64_t k = 0; k < Dg; ++k) {
              const float pre = sg[k] + tg[k];
              const bool pos = pre > 0.f;
              dwh[k] += dg * (pos ? pre : kSlope * pre);
              const float gr = dg * wh[k] * (pos ? 1.f : kSlope);
              dsg[k] += gr;
              dtg[k] += gr;
            }
          }
        }
      }
      if (factored) {
        for (int64_t ii = 0; ii < n; ++ii) {
          const int64_t i = idx[ii], node = b * N + i, u = inv[node];
          const float wv = w[node];
          scatter_row(DL + i * R, DL + i * R + d.gn(), H * Dg, dUg + u * 2 * H * Dg, dcg, wv, dbg);
          scatter_row(DL + i * R + d.ms(), DL + i * R + d.mn(), H * Dm, dUm + u * 2 * H * Dm, dcm,
                      wv, dbm);
        }
      } else {
        // every slot of this composition's rows is written (zeros at padding)
        for (int64_t i = 0; i < N; ++i) {
          store_row(DL + i * R, DL + i * R + d.gn(), H * Dg, dG + (b * N + i) * 2 * H * Dg, dbg);
          store_row(DL + i * R + d.ms(), DL + i * R + d.mn(), H * Dm, dM + (b * N + i) * 2 * H * Dm,
                    dbm);
        }
      }
    }
  });
}

struct Args {
  Dims d;
  int64_t n_unique;
  bool bf16;
};

Args check(const at::Tensor& Sg, const at::Tensor& Sm, const c10::optional<at::Tensor>& wcol_g,
           const c10::optional<at::Tensor>& wcol_m, const c10::optional<at::Tensor>& inv,
           const c10::optional<at::Tensor>& w, const at::Tensor& bg, const at::Tensor& bm,
           const at::Tensor& w2, const at::Tensor& wp, const at::Tensor& mask) {
  TORCH_CHECK(mask.dim() == 2 && mask.scalar_type() == at::kBool && mask.is_contiguous(),
              "mask: contiguous bool (B, N)");
  TORCH_CHECK(w2.dim() == 2 && w2.scalar_type() == at::kFloat && w2.is_contiguous(),
              "w2: contiguous float32 (H, Dg)");
  const int64_t B = mask.size(0), N = mask.size(1), H = w2.size(0), Dg = w2.size(1);
  TORCH_CHECK(Sg.dim() == 2 && Sg.is_contiguous() && Sm.dim() == 2 && Sm.is_contiguous(),
              "first layers: contiguous 2-d");
  TORCH_CHECK(Sg.scalar_type() == Sm.scalar_type() &&
                  (Sg.scalar_type() == at::kFloat || Sg.scalar_type() == at::kBFloat16),
              "first layers: both float32 or both bfloat16");
  TORCH_CHECK(Sg.size(1) == 2 * H * Dg && Sm.size(1) % (2 * H) == 0, "first-layer widths");
  const int64_t Dm = Sm.size(1) / (2 * H);
  const bool factored = inv.has_value();
  const int64_t rows = factored ? Sg.size(0) : B * N;
  TORCH_CHECK(Sg.size(0) == rows && Sm.size(0) == rows, "first layers: expected ", rows, " rows");
  auto f32 = [](const at::Tensor& t, int64_t numel, const char* what) {
    TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() == numel, what,
                ": expected a contiguous float32 tensor of ", numel, " elements");
  };
  f32(bg, H * Dg, "gate bias");
  f32(bm, H * Dm, "message bias");
  f32(wp, B * N * H, "w^p");
  if (factored) {
    TORCH_CHECK(wcol_g.has_value() && wcol_m.has_value() && w.has_value(), "factored: all parts");
    f32(*wcol_g, 2 * H * Dg, "gate weight column");
    f32(*wcol_m, 2 * H * Dm, "message weight column");
    f32(*w, B * N, "weights");
    TORCH_CHECK(inv->scalar_type() == at::kLong && inv->is_contiguous() && inv->numel() == B * N,
                "inv: contiguous int64 (B, N)");
    const auto mx = inv->numel() ? inv->max().item<int64_t>() : 0;
    const auto mn = inv->numel() ? inv->min().item<int64_t>() : 0;
    TORCH_CHECK(mn >= 0 && mx < rows, "inv out of range");
  }
  return {{B, N, H, Dg, Dm}, factored ? rows : 0, Sg.scalar_type() == at::kBFloat16};
}

template <typename T>
Half<T> half_of(const at::Tensor& S, const c10::optional<at::Tensor>& wcol, const at::Tensor& bias,
                int64_t D) {
  return {reinterpret_cast<const T*>(S.data_ptr()),
          wcol.has_value() ? wcol->data_ptr<float>() : nullptr, bias.data_ptr<float>(), D};
}

}  // namespace

// -> P (B, N, H, Dm) in the first layers' dtype, sum_j a (B, N, H), and if save the attention
// a and q = a / w^p (B, N, N, H)
std::vector<at::Tensor> pair_attention_forward(
    const at::Tensor& Sg, const at::Tensor& Sm, const c10::optional<at::Tensor>& wcol_g,
    const c10::optional<at::Tensor>& wcol_m, const c10::optional<at::Tensor>& inv,
    const c10::optional<at::Tensor>& w, const at::Tensor& bg, const at::Tensor& bm,
    const at::Tensor& w2, const at::Tensor& b2, const at::Tensor& wp, const at::Tensor& mask,
    bool save) {
  const Args a = check(Sg, Sm, wcol_g, wcol_m, inv, w, bg, bm, w2, wp, mask);
  const Dims& d = a.d;
  const auto f32 = Sg.options().dtype(at::kFloat);
  at::Tensor P = at::empty({d.B, d.N, d.H, d.Dm}, Sg.options());
  at::Tensor asum = at::empty({d.B, d.N, d.H}, f32);
  at::Tensor A = at::empty({save ? d.B : 0, d.N, d.N, d.H}, f32);
  at::Tensor Q = at::empty({save ? d.B : 0, d.N, d.N, d.H}, f32);
  at::Tensor b2c = b2.to(at::kFloat).contiguous();
  const int64_t* invp = inv.has_value() ? inv->data_ptr<int64_t>() : nullptr;
  const float* wv = w.has_value() ? w->data_ptr<float>() : nullptr;
  float* Ap = save ? A.data_ptr<float>() : nullptr;
  float* Qp = save ? Q.data_ptr<float>() : nullptr;
  if (!a.bf16) {
    forward_impl<float>(d, half_of<float>(Sg, wcol_g, bg, d.Dg), half_of<float>(Sm, wcol_m, bm, d.Dm),
                        invp, wv, w2.data_ptr<float>(), b2c.data_ptr<float>(), wp.data_ptr<float>(),
                        mask.data_ptr<bool>(), reinterpret_cast<float*>(P.data_ptr()),
                        asum.data_ptr<float>(), Ap, Qp);
  } else {
    forward_impl<uint16_t>(d, half_of<uint16_t>(Sg, wcol_g, bg, d.Dg),
                           half_of<uint16_t>(Sm, wcol_m, bm, d.Dm), invp, wv, w2.data_ptr<float>(),
                           b2c.data_ptr<float>(), wp.data_ptr<float>(), mask.data_ptr<bool>(),
                           reinterpret_cast<uint16_t*>(P.data_ptr()), asum.data_ptr<float>(), Ap, Qp);
  }
  return {P, asum, A, Q};
}

// -> d Sg, d Sm (in their dtype and shape), d wcol_g, d wcol_m (factored, else empty), d bg, d bm,
// d w2, d b2 (exactly zero: a shift of all logits of a softmax), d w^p
std::vector<at::Tensor> pair_attention_backward(
    const at::Tensor& Sg, const at::Tensor& Sm, const c10::optional<at::Tensor>& wcol_g,
    const c10::optional<at::Tensor>& wcol_m, const c10::optional<at::Tensor>& inv,
    const c10::optional<at::Tensor>& w, const at::Tensor& bg, const at::Tensor& bm,
    const at::Tensor& w2, const at::Tensor& wp, const at::Tensor& mask, const at::Tensor& A,
    const at::Tensor& Q, const at::Tensor& dP, const at::Tensor& dasum) {
  const Args a = check(Sg, Sm, wcol_g, wcol_m, inv, w, bg, bm, w2, wp, mask);
  const Dims& d = a.d;
  const int64_t H = d.H, Dg = d.Dg, Dm = d.Dm;
  TORCH_CHECK(A.scalar_type() == at::kFloat && A.is_contiguous() && A.numel() == d.B * d.N * d.N * H &&
                  Q.scalar_type() == at::kFloat && Q.is_contiguous() && Q.numel() == A.numel(),
              "saved attention");
  TORCH_CHECK(dasum.scalar_type() == at::kFloat && dasum.is_contiguous() &&
                  dasum.numel() == d.B * d.N * H, "d sum a: contiguous float32 (B, N, H)");
  TORCH_CHECK(dP.scalar_type() == Sg.scalar_type() && dP.is_contiguous() &&
                  dP.numel() == d.B * d.N * H * Dm, "dP: contiguous (B, N, H, Dm), first layers' dtype");
  const bool factored = inv.has_value();
  const auto f32 = Sg.options().dtype(at::kFloat);
  const int64_t nt = at::get_num_threads();
  const int64_t nu = a.n_unique;
  const int64_t acc_len = 2 * H * Dg + H * Dm + (factored ? 2 * H * (Dg + Dm) * (1 + nu) : 0);
  at::Tensor acc = at::zeros({nt, acc_len}, f32);
  at::Tensor dG = factored ? at::empty({0}, Sg.options()) : at::empty(Sg.sizes(), Sg.options());
  at::Tensor dM = factored ? at::empty({0}, Sm.options()) : at::empty(Sm.sizes(), Sm.options());
  at::Tensor dwp = at::zeros({d.B, d.N, H}, f32);
  const int64_t* invp = factored ? inv->data_ptr<int64_t>() : nullptr;
  const float* wv = factored ? w->data_ptr<float>() : nullptr;
  if (!a.bf16) {
    backward_impl<float>(d, half_of<float>(Sg, wcol_g, bg, Dg), half_of<float>(Sm, wcol_m, bm, Dm),
                         invp, wv, nu, w2.data_ptr<float>(), mask.data_ptr<bool>(),
                         A.data_ptr<float>(), Q.data_ptr<float>(),
                         reinterpret_cast<const float*>(dP.data_ptr()), dasum.data_ptr<float>(),
                         reinterpret_cast<float*>(dG.data_ptr()), reinterpret_cast<float*>(dM.data_ptr()),
                         dwp.data_ptr<float>(), acc.data_ptr<float>(), acc_len, nt);
  } else {
    backward_impl<uint16_t>(d, half_of<uint16_t>(Sg, wcol_g, bg, Dg),
                            half_of<uint16_t>(Sm, wcol_m, bm, Dm), invp, wv, nu,
                            w2.data_ptr<float>(), mask.data_ptr<bool>(), A.data_ptr<float>(),
                            Q.data_ptr<float>(), reinterpret_cast<const uint16_t*>(dP.data_ptr()),
                            dasum.data_ptr<float>(), reinterpret_cast<uint16_t*>(dG.data_ptr()),
                            reinterpret_cast<uint16_t*>(dM.data_ptr()), dwp.data_ptr<float>(),
                            acc.data_ptr<float>(), acc_len, nt);
  }
  at::Tensor tot = acc.sum(0);
  int64_t o = 0;
  auto take = [&](int64_t len) {
    at::Tensor t = tot.narrow(0, o, len);
    o += len;
    return t;
  };
  at::Tensor dw2 = take(H * Dg).view({H, Dg});
  at::Tensor dbg = take(H * Dg);
  at::Tensor dbm = take(H * Dm);
  at::Tensor dcg, dcm;
  if (factored) {
    dcg = take(2 * H * Dg);
    dcm = take(2 * H * Dm);
    dG = take(nu * 2 * H * Dg).view({nu, 2 * H * Dg}).to(Sg.scalar_type());
    dM = take(nu * 2 * H * Dm).view({nu, 2 * H * Dm}).to(Sm.scalar_type());
  } else {
    dcg = at::empty({0}, f32);
    dcm = at::empty({0}, f32);
  }
  return {dG, dM, dcg, dcm, dbg, dbm, dw2, at::zeros({H}, f32), dwp};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pair_attention_forward", torch::wrap_pybind_function(pair_attention_forward),
        "pair attention of one message layer: forward");
  m.def("pair_attention_backward", torch::wrap_pybind_function(pair_attention_backward),
        "pair attention of one message layer: backward");
}

// Compressive Transformer (src/attention/compressive.cc) against closed forms and
// against transformer_xl: memory and compressed-memory lengths, exactly which
// positions each compression function reads, that the reconstruction loss trains only
// the compressor, cmem_len 0 equal to transformer_xl bit for bit (f64 and f32), rate 1
// mean pooling equal to transformer_xl with a longer memory, a finite-difference check
// of the compressor's gradient, and a few training steps for every compression function.
#include <algorithm>
#include <map>
#include <type_traits>

#include "gradcheck.h"
#include "txl/models/language_model.h"
#include "txl/train/optimizer.h"

using namespace txl;
using namespace txl::testing;

namespace {

ModelConfig small_config(int64_t mem_len, int64_t T) {
  ModelConfig mc;
  mc.n_layer = 2;
  mc.n_head = 2;
  mc.d_model = 8;
  mc.d_head = 4;
  mc.d_inner = 16;
  mc.tgt_len = T;
  mc.mem_len = mem_len;
  mc.init_std = 0.3;  // wide enough that attention is far from uniform
  return mc;
}

ModelConfig compressive(ModelConfig mc, int64_t cmem_len, int64_t rate, const std::string& fn,
                        const std::string& recon = "attention") {
  mc.attention.type = "compressive";
  mc.attention.options = {{"cmem_len", cmem_len}, {"rate", rate}, {"compression", fn}, {"recon_loss", recon}};
  return mc;
}

// Deterministic pseudo-random token ids [T, B] for segment s.
Tensor tokens(int64_t T, int64_t B, int64_t s, int64_t V, uint64_t salt = 0) {
  std::vector<int64_t> v(static_cast<size_t>(T * B));
  uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(s + 1) + salt;
  for (auto& t : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    t = static_cast<int64_t>(x % static_cast<uint64_t>(V));
  }
  return Tensor::from_vector<int64_t>({T, B}, v);
}

// Copies every parameter of `from` into the parameter of the same name in `to`.
void copy_shared_weights(const LanguageModel& from, LanguageModel& to) {
  NoGradGuard ng;
  for (const auto& [name, t] : from.params().named()) {
    Tensor dst = to.params().get(name).detach();
    copy_(dst, t.detach());
  }
}

bool is_compressor(const std::string& name) { return name.find(".compress.") != std::string::npos; }

// rows [beg, beg + n) of x along axis 0.
std::vector<double> rows(const Tensor& x, int64_t beg, int64_t n) { return narrow(x, 0, beg, n).to_doubles(); }

double max_abs(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Memory length after N stream rows (docs/models.md): all of them up to mem_len, then
// mem_len plus the remainder that waits for a whole group of c.
int64_t closed_memory(int64_t N, int64_t mem_len, int64_t c) { return N <= mem_len ? N : mem_len + (N - mem_len) % c; }

constexpr int64_t kVocab = 11;

}  // namespace

TEST_CASE("memory and compressed-memory lengths follow the closed form", "[compressive]") {
  struct Case {
    int64_t T, mem_len, c, n_cm;
  };
  for (Case k : {Case{4, 6, 2, 5}, Case{4, 6, 3, 5}, Case{1, 3, 2, 4}, Case{3, 5, 2, 3}, Case{4, 2, 3, 6}}) {
    INFO("T " << k.T << " mem_len " << k.mem_len << " c " << k.c << " cmem_len " << k.n_cm);
    LanguageModel m(compressive(small_config(k.mem_len, k.T), k.n_cm, k.c, "mean_pool"), kVocab, DType::f64);
    m.init_weights(3);
    NoGradGuard ng;
    std::vector<Tensor> state;
    for (int64_t s = 1; s <= 10; ++s) {
      state = m.forward(tokens(k.T, 2, s, kVocab), Tensor(), state, {}).mems;
      const int64_t N = s * k.T, M = closed_memory(N, k.mem_len, k.c);
      const int64_t C = std::min(k.n_cm, (N - M) / k.c);
      REQUIRE(state.size() == 5);
      for (int l = 0; l < 3; ++l) REQUIRE(state[l].shape() == Shape{M, 2, 8});
      for (int l = 3; l < 5; ++l) REQUIRE(state[l].shape() == Shape{C, 2, 8});
    }
  }
}

TEST_CASE("compressed slots hold exactly the expected stream positions", "[compressive]") {
  // Every row passes through the memory (mem_len >= T), so each layer's input stream
  // can be read off the last T rows of its memory; compressed slot g must then be
  // f_c of stream group g (rows g*c .. g*c + c - 1), the newest cmem_len of them.
  struct Case {
    int64_t T, mem_len, c, n_cm;
  };
  for (const std::string fn : {"mean_pool", "max_pool", "dilated_conv", "most_used"})
    for (Case k : {Case{4, 6, 2, 5}, Case{3, 5, 2, 4}, Case{1, 2, 3, 3}, Case{4, 6, 3, 2}}) {
      if (fn == "dilated_conv" && k.mem_len < k.c * (k.c - 1)) continue;
      INFO(fn << " T " << k.T << " mem_len " << k.mem_len << " c " << k.c << " cmem_len " << k.n_cm);
      const int64_t B = 2, D = 8, c = k.c;
      LanguageModel m(compressive(small_config(k.mem_len, k.T), k.n_cm, c, fn), kVocab, DType::f64);
      m.init_weights(5);
      NoGradGuard ng;
      std::vector<Tensor> state;
      std::vector<std::vector<Tensor>> stream(3);  // per layer, one [T, B, D] per segment
      int64_t evicted_before = 0;
      for (int64_t s = 1; s <= 12; ++s) {
        state = m.forward(tokens(k.T, B, s, kVocab), Tensor(), state, {}).mems;
        for (int l = 0; l < 3; ++l) stream[l].push_back(narrow(state[l], 0, state[l].shape()[0] - k.T, k.T));
        const int64_t N = s * k.T, evicted = N - closed_memory(N, k.mem_len, c), G = evicted / c;
        for (int l = 0; l < 2; ++l) {
          Tensor all = concat(stream[l], 0);  // [N, B, D]
          const Tensor& cm = state[3 + l];
          const int64_t C = cm.shape()[0];
          REQUIRE(C == std::min(k.n_cm, G));
          if (fn == "most_used") {
            // Each slot is a verbatim copy of an evicted row, per column in increasing
            // stream order (matched greedily: layer 0 repeats rows of repeated tokens), and
            // each eviction keeps (rows evicted now) / c of its own rows (layer 1: unique rows).
            for (int64_t b = 0; b < B; ++b) {
              std::vector<int64_t> picked;
              for (int64_t g = 0; g < C; ++g) {
                auto slot = narrow(narrow(cm, 0, g, 1), 1, b, 1).to_doubles();
                int64_t found = -1;
                for (int64_t r = picked.empty() ? 0 : picked.back() + 1; r < evicted && found < 0; ++r)
                  if (narrow(narrow(all, 0, r, 1), 1, b, 1).to_doubles() == slot) found = r;
                REQUIRE(found >= 0);
                picked.push_back(found);
              }
              const int64_t now =
                  std::count_if(picked.begin(), picked.end(), [&](int64_t r) { return r >= evicted_before; });
              if (l == 1) REQUIRE(now == std::min<int64_t>(C, (evicted - evicted_before) / c));
            }
            continue;
          }
          for (int64_t g = G - C; g < G; ++g) {
            Tensor group = reshape(narrow(all, 0, g * c, c), {c, B, D});
            Tensor expect;
            if (fn == "mean_pool") expect = mean(group, {0});
            if (fn == "max_pool") expect = max(group, {0});
            if (fn == "dilated_conv") {  // slot g = W [row j of group g + j]_j + b
              std::vector<Tensor> taps;
              for (int64_t j = 0; j < c; ++j) taps.push_back(reshape(narrow(all, 0, (g + j) * c + j, 1), {B, D}));
              const std::string key = "layers." + std::to_string(l) + ".dec_attn.compress.";
              expect = linear(concat(taps, 1), m.params().get(key + "weight"), m.params().get(key + "bias"));
            }
            INFO("layer " << l << " segment " << s << " slot " << g);
            REQUIRE(max_abs(rows(cm, g - (G - C), 1), expect.to_doubles()) <= 1e-12);
          }
        }
        evicted_before = evicted;
      }
    }
}

TEST_CASE("the reconstruction loss trains only the compressor", "[compressive]") {
  for (bool pre : {false, true})
    for (const std::string fn : {"conv", "dilated_conv"}) {
      INFO(fn << (pre ? " pre-LN" : " post-LN"));
      ModelConfig base = small_config(4, 4);
      base.pre_lnorm = pre;
      base.dropout = 0.1;
      base.dropatt = 0.1;
      LanguageModel on(compressive(base, 3, 2, fn, "attention"), kVocab, DType::f64);
      LanguageModel off(compressive(base, 3, 2, fn, "none"), kVocab, DType::f64);
      on.init_weights(9);
      copy_shared_weights(on, off);
      std::vector<Tensor> s_on, s_off;
      Tensor obj_on, obj_off;
      bool had_aux = false;
      for (int64_t s = 0; s < 5; ++s) {
        ForwardOptions fo{true, 100 + static_cast<uint64_t>(s)};
        Tensor in = tokens(4, 2, s, kVocab), tg = tokens(4, 2, s + 50, kVocab);
        ForwardResult a = on.forward(in, tg, s_on, fo), b = off.forward(in, tg, s_off, fo);
        REQUIRE(!b.aux_loss.defined());
        REQUIRE(max_abs(a.loss.to_doubles(), b.loss.to_doubles()) == 0.0);
        Tensor ta = mean(a.loss), tb = mean(b.loss);
        if (a.aux_loss.defined()) {
          had_aux = true;
          REQUIRE(a.aux_loss.item() > 0.0);
          ta = add(ta, a.aux_loss);
        }
        obj_on = obj_on.defined() ? add(obj_on, ta) : ta;
        obj_off = obj_off.defined() ? add(obj_off, tb) : tb;
        REQUIRE(a.mems.size() == b.mems.size());
        for (size_t l = 0; l < a.mems.size(); ++l)
          REQUIRE(max_abs(a.mems[l].to_doubles(), b.mems[l].to_doubles()) == 0.0);
        s_on = a.mems;
        s_off = b.mems;
      }
      REQUIRE(had_aux);
      backward(obj_on);
      backward(obj_off);
      int compressors = 0;
      for (const auto& [name, p] : on.params().named()) {
        INFO(name);
        auto g_on = p.grad().to_doubles(), g_off = off.params().get(name).grad().to_doubles();
        if (is_compressor(name)) {
          compressors++;
          REQUIRE(max_abs(g_off, std::vector<double>(g_off.size(), 0.0)) == 0.0);  // the LM loss never reaches f_c
          REQUIRE(max_abs(g_on, std::vector<double>(g_on.size(), 0.0)) > 0.0);
        } else {
          REQUIRE(max_abs(g_on, g_off) == 0.0);  // bit for bit
        }
      }
      REQUIRE(compressors == 4);
    }
}

TEMPLATE_TEST_CASE("cmem_len 0 is transformer_xl bit for bit", "[compressive]", double, float) {
  const DType dt = std::is_same_v<TestType, double> ? DType::f64 : DType::f32;
  for (int variant = 0; variant < 3; ++variant) {
    ModelConfig base = small_config(5, 4);
    base.dropout = 0.1;
    base.dropatt = 0.1;
    base.pre_lnorm = variant == 1;
    base.same_length = variant == 2;
    base.clamp_len = variant == 2 ? 3 : -1;
    INFO("variant " << variant);
    LanguageModel txl(base, kVocab, dt);
    LanguageModel ct(compressive(base, 0, 2, "conv"), kVocab, dt);
    txl.init_weights(21);
    ct.init_weights(77);
    copy_shared_weights(txl, ct);
    std::vector<Tensor> s_txl, s_ct;
    Tensor o_txl, o_ct;
    for (int64_t s = 0; s < 4; ++s) {
      ForwardOptions fo{true, 7 + static_cast<uint64_t>(s)};
      Tensor in = tokens(4, 3, s, kVocab), tg = tokens(4, 3, s + 9, kVocab);
      ForwardResult a = txl.forward(in, tg, s_txl, fo), b = ct.forward(in, tg, s_ct, fo);
      REQUIRE(max_abs(a.loss.to_doubles(), b.loss.to_doubles()) == 0.0);
      REQUIRE(!b.aux_loss.defined());
      REQUIRE(a.mems.size() == b.mems.size());
      for (size_t l = 0; l < a.mems.size(); ++l) {
        REQUIRE(a.mems[l].shape() == b.mems[l].shape());
        REQUIRE(max_abs(a.mems[l].to_doubles(), b.mems[l].to_doubles()) == 0.0);
      }
      o_txl = o_txl.defined() ? add(o_txl, mean(a.loss)) : mean(a.loss);
      o_ct = o_ct.defined() ? add(o_ct, mean(b.loss)) : mean(b.loss);
      s_txl = a.mems;
      s_ct = b.mems;
    }
    backward(o_txl);
    backward(o_ct);
    for (const auto& [name, p] : txl.params().named()) {
      INFO(name);
      REQUIRE(max_abs(p.grad().to_doubles(), ct.params().get(name).grad().to_doubles()) == 0.0);
    }
  }
}

TEST_CASE("rate 1 mean pooling is transformer_xl with mem_len + cmem_len", "[compressive]") {
  // f_c is the identity, so [cm; m] holds the same rows as a memory of mem_len + cmem_len.
  for (bool same_length : {false, true}) {
    ModelConfig base = small_config(7, 2);
    base.same_length = same_length;
    ModelConfig ct_cfg = base;
    ct_cfg.mem_len = 3;
    LanguageModel txl(base, kVocab, DType::f64);
    LanguageModel ct(compressive(ct_cfg, 4, 1, "mean_pool"), kVocab, DType::f64);
    txl.init_weights(4);
    copy_shared_weights(txl, ct);
    NoGradGuard ng;
    std::vector<Tensor> s_txl, s_ct;
    for (int64_t s = 0; s < 8; ++s) {
      Tensor in = tokens(2, 2, s, kVocab);
      ForwardResult a = txl.forward(in, in, s_txl, {}), b = ct.forward(in, in, s_ct, {});
      REQUIRE(max_abs(a.loss.to_doubles(), b.loss.to_doubles()) == 0.0);
      REQUIRE(a.mems[0].shape()[0] == b.mems[0].shape()[0] + b.mems[3].shape()[0]);
      s_txl = a.mems;
      s_ct = b.mems;
    }
  }
}

TEST_CASE("one token at a time equals a whole segment until the first eviction", "[compressive]") {
  // Incremental decoding: before anything is evicted the model is transformer_xl over
  // its memory, so feeding 6 tokens one by one gives the logits of one 6-token segment;
  // afterwards the single-token path keeps running with whole-group evictions.
  LanguageModel m(compressive(small_config(8, 6), 4, 2, "conv"), kVocab, DType::f64);
  m.init_weights(8);
  NoGradGuard ng;
  ForwardOptions fo;
  fo.want_logits = true;
  fo.want_loss = false;
  Tensor seq = tokens(6, 1, 0, kVocab);
  Tensor whole = m.forward(seq, Tensor(), {}, fo).logits;  // [6, 1, V]
  std::vector<Tensor> state;
  for (int64_t t = 0; t < 20; ++t) {
    Tensor tok = t < 6 ? narrow(seq, 0, t, 1) : tokens(1, 1, t, kVocab);
    ForwardResult out = m.forward(tok, Tensor(), state, fo);
    if (t < 6) REQUIRE(max_abs(out.logits.to_doubles(), narrow(whole, 0, t, 1).to_doubles()) <= 1e-12);
    state = out.mems;
    const int64_t N = t + 1, M = closed_memory(N, 8, 2);
    REQUIRE(state[0].shape()[0] == M);
    REQUIRE(state[3].shape()[0] == std::min<int64_t>(4, (N - M) / 2));
  }
}

TEST_CASE("the compressor's gradient matches finite differences", "[compressive]") {
  for (const std::string fn : {"conv", "dilated_conv"})
    for (bool pre : {false, true}) {
      INFO(fn << (pre ? " pre-LN" : " post-LN"));
      ModelConfig base = small_config(4, 4);
      base.pre_lnorm = pre;
      LanguageModel m(compressive(base, 3, 2, fn), kVocab, DType::f64);
      m.init_weights(13);
      std::vector<Tensor> state;
      {
        NoGradGuard ng;
        for (int64_t s = 0; s < 3; ++s) state = m.forward(tokens(4, 2, s, kVocab), Tensor(), state, {}).mems;
      }
      // One training forward from a fixed state: the loss depends on f_c only through
      // this segment's compression (the state is stop-gradient).
      Tensor in = tokens(4, 2, 3, kVocab);
      auto aux = [&](const std::vector<Tensor>&) {
        ForwardOptions fo{true, 1};
        return m.forward(in, in, state, fo).aux_loss;
      };
      std::vector<Tensor> inputs;
      for (const char* l : {"0", "1"})
        for (const char* wb : {"weight", "bias"})
          inputs.push_back(m.params().get(std::string("layers.") + l + ".dec_attn.compress." + wb));
      gradcheck(aux, inputs, 1e-6, 1e-6);
    }
}

TEST_CASE("every compression function trains", "[compressive]") {
  // A repeating 13-token pattern that spans more than the memory: the compressed memory
  // helps. The LM loss must fall. (The reconstruction loss need not: the activations it
  // reconstructs change as the network trains; see the next test.)
  for (const std::string fn : {"mean_pool", "max_pool", "conv", "dilated_conv", "most_used"}) {
    INFO(fn);
    ModelConfig mc = small_config(4, 4);
    mc.d_model = 16;
    mc.d_head = 8;
    mc.d_inner = 32;
    mc.init_std = 0.02;
    LanguageModel m(compressive(mc, 4, 2, fn), kVocab, DType::f32);
    m.init_weights(1);
    OptimizerConfig oc;
    oc.lr = 1e-2;
    auto opt = make_optimizer(oc, m.params());
    std::vector<int64_t> pattern{1, 4, 2, 8, 5, 7, 3, 9, 0, 6, 10, 2, 4};
    std::vector<Tensor> state;
    std::vector<double> lm, recon;
    int64_t pos = 0;
    for (int step = 0; step < 60; ++step) {
      std::vector<int64_t> in, tg;
      for (int64_t t = 0; t < 4; ++t)
        for (int64_t b = 0; b < 2; ++b) {
          in.push_back(pattern[(pos + t + 5 * b) % 13]);
          tg.push_back(pattern[(pos + t + 1 + 5 * b) % 13]);
        }
      pos += 4;
      m.params().zero_grad();
      ForwardResult out = m.forward(Tensor::from_vector<int64_t>({4, 2}, in), Tensor::from_vector<int64_t>({4, 2}, tg),
                                    state, ForwardOptions{true, static_cast<uint64_t>(step)});
      Tensor obj = mean(out.loss);
      lm.push_back(obj.item());
      if (out.aux_loss.defined()) {
        recon.push_back(out.aux_loss.item());
        obj = add(obj, out.aux_loss);
      }
      backward(obj);
      clip_grad_norm(m.params(), 1.0);
      opt->step(m.params(), oc.lr);
      state = out.mems;
    }
    REQUIRE(state.size() == 5);
    REQUIRE(state[3].shape()[0] == 4);
    auto avg = [](const std::vector<double>& v, size_t beg, size_t n) {
      double s = 0;
      for (size_t i = beg; i < beg + n; ++i) s += v[i];
      return s / static_cast<double>(n);
    };
    CHECK(avg(lm, lm.size() - 10, 10) < 0.5 * avg(lm, 0, 10));
    const bool conv = fn == "conv" || fn == "dilated_conv";
    REQUIRE(recon.empty() != conv);
  }
}

TEST_CASE("the reconstruction loss alone trains the compressor and nothing else", "[compressive]") {
  // Adam on the reconstruction loss only, from a fixed state and segment: every other
  // parameter gets a zero gradient, so stays bit for bit; the loss must fall.
  for (const std::string fn : {"conv", "dilated_conv"}) {
    INFO(fn);
    LanguageModel m(compressive(small_config(4, 4), 3, 2, fn), kVocab, DType::f64);
    m.init_weights(17);
    std::vector<Tensor> state;
    {
      NoGradGuard ng;
      for (int64_t s = 0; s < 3; ++s) state = m.forward(tokens(4, 2, s, kVocab), Tensor(), state, {}).mems;
    }
    const std::vector<double> before = m.params().flat_data().to_doubles();
    OptimizerConfig oc;
    oc.lr = 1e-2;
    auto opt = make_optimizer(oc, m.params());
    Tensor in = tokens(4, 2, 3, kVocab);
    std::vector<double> recon;
    for (int step = 0; step < 40; ++step) {
      m.params().zero_grad();
      Tensor aux = m.forward(in, in, state, ForwardOptions{true, 1}).aux_loss;
      recon.push_back(aux.item());
      backward(aux);
      opt->step(m.params(), oc.lr);
    }
    CHECK(recon.back() < 0.5 * recon.front());
    const std::vector<double> after = m.params().flat_data().to_doubles();
    int64_t off = 0;
    for (const auto& [name, p] : m.params().named()) {
      INFO(name);
      const auto n = static_cast<size_t>(p.numel());
      std::vector<double> a(before.begin() + off, before.begin() + off + n),
          b(after.begin() + off, after.begin() + off + n);
      if (is_compressor(name))
        CHECK(max_abs(a, b) > 0.0);
      else
        REQUIRE(max_abs(a, b) == 0.0);
      off += static_cast<int64_t>(n);
    }
  }
}

TEST_CASE("compressive parameter count and config checks", "[compressive]") {
  ModelConfig base = small_config(4, 4);
  for (const std::string fn : {"conv", "dilated_conv", "mean_pool", "most_used"}) {
    ModelConfig c = compressive(base, 3, 3, fn);
    LanguageModel m(c, kVocab, DType::f64);
    REQUIRE(m.params().numel() == LanguageModel::parameter_count(c, kVocab));
    const bool conv = fn == "conv" || fn == "dilated_conv";
    REQUIRE(m.params().numel() - LanguageModel::parameter_count(base, kVocab) == (conv ? 2 * (3 * 8 * 8 + 8) : 0));
  }
  const AttentionSpec& spec = attention_spec("compressive");
  ModelConfig d = compressive(base, 3, 3, "dilated_conv");
  d.mem_len = 5;  // needs 3 * 2 = 6 rows after the evicted ones
  auto problems = spec.check(d);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].key == "model.mem_len");
  d.mem_len = 6;
  CHECK(spec.check(d).empty());
}

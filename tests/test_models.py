"""Model presets: deterministic builds, identical save/reload, one-line errors offline."""

from __future__ import annotations

import pytest
import torch

from rlctx_utils.models import (
    PRESETS,
    ModelError,
    ModelNotFoundError,
    build_model,
    count_parameters,
    load_model,
    preset_config,
    resolve_attn,
    resolve_dtype,
)


def _same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_presets_and_parameter_counts():
    assert {"smoke", "cpu", "gpu-small", "opencoder-1.5b-shape"} <= set(PRESETS)
    m = build_model("smoke", vocab_size=512, max_position_embeddings=300)
    assert m.dtype == torch.float32 and m.config.max_position_embeddings == 300
    assert m.config._attn_implementation == "sdpa"
    n = count_parameters(m)
    assert n["embedding"] == 2 * 512 * 64  # untied input and output embeddings
    assert n["total"] == sum(p.numel() for p in m.parameters()) == n["embedding"] + n["non_embedding"]
    # OpenCoder-1.5B's shape, built without memory: its published size is 1.9B parameters
    with torch.device("meta"):
        from transformers import LlamaForCausalLM

        oc = LlamaForCausalLM(preset_config("opencoder-1.5b-shape", vocab_size=96640))
    assert 1.85e9 < count_parameters(oc)["total"] < 1.95e9
    assert oc.config.head_dim == 160


def test_build_is_deterministic_in_seed():
    a = build_model("smoke", vocab_size=256, seed=3)
    state = torch.random.get_rng_state()
    b = build_model("smoke", vocab_size=256, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    c = build_model("smoke", vocab_size=256, seed=4)
    assert _same_state(a, b) and not _same_state(a, c)


def test_save_and_reload_identically(tmp_path):
    m = build_model("smoke", vocab_size=300, rope_theta=500_000.0, seed=1, num_hidden_layers=3)
    m.save_pretrained(tmp_path / "ckpt")
    r = load_model(tmp_path / "ckpt", device="cpu")
    assert type(r) is type(m) and _same_state(m, r)
    assert r.config.num_hidden_layers == 3 and r.config.rope_parameters["rope_theta"] == 500_000.0
    assert r.dtype == torch.float32 and r.config._attn_implementation == "sdpa"
    x = torch.randint(0, 300, (2, 40), generator=torch.Generator().manual_seed(0))
    m.eval()
    assert torch.equal(m(input_ids=x).logits, r(input_ids=x).logits)


def test_offline_errors_are_one_line(tmp_path):
    with pytest.raises(ModelNotFoundError) as e:
        load_model(tmp_path / "no" / "such" / "model")
    # the hint names an option that exists (issue 12, item 15: there is no --model option)
    assert "\n" not in str(e.value) and "rlctx eval --checkpoint DIR" in str(e.value)
    with pytest.raises(ModelNotFoundError) as e:
        load_model("rlctx-test-nonexistent/definitely-not-a-model", local_files_only=True)
    msg = str(e.value)
    assert "\n" not in msg and "not found locally" in msg and "rlctx eval --checkpoint DIR" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path / "empty")
    with pytest.raises(ModelError, match="unknown model preset"):
        build_model("huge", vocab_size=100)
    with pytest.raises(ModelError, match="even size"):
        build_model({"hidden_size": 60, "num_hidden_layers": 1, "num_attention_heads": 4}, vocab_size=100)


def test_hardware_choices():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_attn("auto", "cpu", torch.float32) == "sdpa"
    assert resolve_attn("eager", "cuda", torch.bfloat16) == "eager"
    with pytest.raises(ModelError):
        resolve_dtype("fp8", "cpu")

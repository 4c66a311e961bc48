"""Model behaviour: padding and future positions never change an output; shapes; RoPE."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from perflaw.training.models import apply_rope, attention_mask, build_model, rope_tables  # noqa: E402

MODELS = ["llama", "hstu", "sasrec"]


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make(model, dim=12, layers=2, max_len=10, seed=0):
    torch.manual_seed(seed)
    built = build_model(model, n_items=30, layers=layers, dim=dim, heads=None, max_len=max_len, dropout=0.0)
    # non-zero norm biases and position tables so that nothing is trivially symmetric
    with torch.no_grad():
        for name, p in built.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return built.eval()


@pytest.mark.parametrize("model", MODELS)
def test_more_left_padding_changes_no_output(model):
    built = make(model)
    sequence = torch.tensor([5, 9, 2, 17, 3])
    short = torch.cat([torch.zeros(1, dtype=torch.long), sequence])[None]  # 1 pad
    long = torch.cat([torch.zeros(5, dtype=torch.long), sequence])[None]  # 5 pads
    with torch.no_grad():
        a, b = built(short)[0, -5:], built(long)[0, -5:]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", MODELS)
def test_padding_embedding_content_is_never_attended(model):
    built = make(model)
    items = torch.tensor([[0, 0, 0, 4, 8, 1], [0, 7, 7, 2, 5, 6]])
    with torch.no_grad():
        before = built(items)
        built.item_embedding.weight[0] = 50 * torch.randn(built.item_embedding.weight.shape[1])
        after = built(items)
    real = items != 0
    # exactly equal, not just close: the padded keys have zero weight
    assert torch.equal(before[real], after[real])


@pytest.mark.parametrize("model", MODELS)
def test_future_positions_never_change_an_output(model):
    built = make(model)
    items = torch.tensor([[0, 0, 3, 8, 1, 14, 2, 9]])
    changed = items.clone()
    changed[0, 5:] = torch.tensor([20, 21, 22])
    with torch.no_grad():
        a, b = built(items), built(changed)
    assert torch.equal(a[0, :5], b[0, :5])
    assert not torch.allclose(a[0, 5:], b[0, 5:])


@pytest.mark.parametrize("model", MODELS)
def test_past_positions_do_change_outputs(model):
    built = make(model)
    items = torch.tensor([[0, 3, 8, 1]])
    changed = torch.tensor([[0, 4, 8, 1]])
    with torch.no_grad():
        assert not torch.allclose(built(items)[0, -1], built(changed)[0, -1])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dim", [25, 50, 75, 100])
def test_any_dim_builds_and_scores(model, dim):
    built = make(model, dim=dim, layers=1)
    scores = built.score_last(torch.tensor([[0, 1, 2], [4, 5, 6]]))
    assert scores.shape == (2, 31) and torch.isfinite(scores).all()


@pytest.mark.parametrize("model", MODELS)
def test_too_long_or_flat_input_is_rejected(model):
    built = make(model, max_len=4)
    with pytest.raises(ValueError, match="exceeds max_len=4"):
        built(torch.ones(1, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="must be \\(batch, length\\)"):
        built(torch.ones(5, dtype=torch.long))


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(1)
    cos, sin = rope_tables(32, 8)
    q, k = torch.randn(8), torch.randn(8)

    def score(i, j):
        qi = apply_rope(q[None, None, None], cos[i : i + 1], sin[i : i + 1])
        kj = apply_rope(k[None, None, None], cos[j : j + 1], sin[j : j + 1])
        return (qi * kj).sum()

    torch.testing.assert_close(score(5, 2), score(20, 17))
    torch.testing.assert_close(score(9, 9), (q * k).sum())


def test_attention_mask_is_causal_and_hides_padding():
    mask = attention_mask(torch.tensor([[False, True, True]]))[0, 0]
    expected = torch.tensor([[True, False, False], [False, True, False], [False, True, True]])
    assert torch.equal(mask, expected)


def test_llama_residual_projections_have_depth_scaled_init():
    torch.manual_seed(0)
    built = build_model("llama", n_items=500, layers=8, dim=64, heads=None, max_len=10)
    block = built.blocks[0]
    assert block.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert block.down.weight.std().item() == pytest.approx(0.02 / 4, rel=0.05)  # 0.02 / sqrt(2 * 8)
    assert not any(n.endswith("bias") for n, _ in built.named_parameters())
    assert built.item_table() is built.item_embedding.weight  # tied output layer


def test_scores_stay_float32_under_bf16_autocast():
    built = make("llama")
    items = torch.tensor([[0, 1, 2, 3]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores = built.score_last(items)
    assert scores.dtype == torch.float32
    # a bf16 product would round scores to ~3 significant digits and create ties
    assert len(torch.unique(scores[0, 1:])) == 30

"""Head-count rule and parameter counts: the torch-free formulas against real models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from perflaw.sizing import (
    TARGET_HEAD_DIM,
    attention_shape,
    attention_width,
    param_count,
    pick_heads,
    valid_heads,
)

SIZES = [(1, 1, None), (1, 8, None), (2, 25, None), (2, 50, None), (3, 75, None), (2, 100, None), (2, 64, 4), (4, 32, 1)]


@pytest.mark.parametrize("model", ["llama", "hstu", "sasrec"])
@pytest.mark.parametrize("layers,dim,heads", SIZES)
def test_param_count_equals_torch_model(model, layers, dim, heads):
    pytest.importorskip("torch")
    from perflaw.training.models import build_model

    n_items, max_len = 37, 9
    built = build_model(model, n_items, layers, dim, heads, max_len)
    total = sum(p.numel() for p in built.parameters())
    embedding = built.item_embedding.weight.numel()
    if model == "sasrec":
        embedding += built.position_embedding.weight.numel()
    assert param_count(model, layers, dim, n_items, max_len, heads) == total
    assert param_count(model, layers, dim, n_items, max_len, heads, include_embedding=False) == total - embedding


@pytest.mark.parametrize("dim", [25, 50, 75, 100, 64, 1, 2, 3, 128, 250])
def test_llama_heads_give_even_head_size(dim):
    shape = attention_shape("llama", dim)
    assert shape.head_dim % 2 == 0
    assert shape.width in (dim, dim + 1)  # odd dims widen the attention by one channel
    assert shape.width == attention_width("llama", dim)


@pytest.mark.parametrize("model", ["llama", "hstu", "sasrec"])
@pytest.mark.parametrize("dim", range(1, 130))
def test_pick_heads_is_closest_valid_head_size(model, dim):
    # brute force over every head count, independently of valid_heads()
    width = dim + 1 if (model == "llama" and dim % 2) else dim
    candidates = [
        h for h in range(1, width + 1)
        if width % h == 0 and (model != "llama" or (width // h) % 2 == 0)
    ]
    best = min(abs(width // h - TARGET_HEAD_DIM) for h in candidates)
    expected = min(h for h in candidates if abs(width // h - TARGET_HEAD_DIM) == best)
    assert pick_heads(dim, model) == expected
    assert valid_heads(model, dim) == candidates


def test_stated_examples_of_the_rule():
    assert [attention_shape("llama", d) for d in (25, 50, 75, 100)] == [
        attention_shape("llama", 25, 1), attention_shape("llama", 50, 1),
        attention_shape("llama", 75, 2), attention_shape("llama", 100, 5),
    ]
    assert [(s.heads, s.head_dim) for s in map(lambda d: attention_shape("llama", d), (25, 50, 75, 100))] == [
        (1, 26), (1, 50), (2, 38), (5, 20)
    ]
    assert pick_heads(64) == 2 and pick_heads(64, "sasrec") == 2


@pytest.mark.parametrize(
    "model,dim,heads",
    [("llama", 64, 3), ("llama", 50, 2), ("llama", 64, 64), ("sasrec", 25, 2), ("hstu", 10, 4)],
)
def test_heads_without_valid_layout_are_rejected(model, dim, heads):
    with pytest.raises(ValueError, match=f"heads={heads} is not valid.*valid head counts are"):
        attention_shape(model, dim, heads)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"model": "gpt"}, ValueError, "unknown model 'gpt'"),
        ({"dim": 0}, ValueError, "dim must be >= 1"),
        ({"layers": 0}, ValueError, "layers must be >= 1"),
        ({"max_len": 1}, ValueError, "max_len must be >= 2"),
        ({"n_items": 0}, ValueError, "n_items must be >= 1"),
        ({"dim": 8.0}, TypeError, "dim must be an integer"),
    ],
)
def test_param_count_rejects_bad_sizes(kwargs, error, match):
    args = {"model": "llama", "layers": 2, "dim": 64, "n_items": 10} | kwargs
    with pytest.raises(error, match=match):
        param_count(**args)


def test_param_count_grows_with_size():
    counts = [param_count("llama", layers, 64, 1000) for layers in (1, 2, 4)]
    assert counts[0] < counts[1] < counts[2]
    # the embedding part is (n_items + 1) * dim whatever the depth
    assert all(c - param_count("llama", l, 64, 1000, include_embedding=False) == 1001 * 64
               for c, l in zip(counts, (1, 2, 4)))


def test_sizing_config_and_result_do_not_import_torch():
    code = (
        "import sys, perflaw\n"
        "from perflaw.sizing import param_count\n"
        "from perflaw.training import TrainConfig, TrainResult\n"
        "import perflaw.eval\n"
        "TrainConfig(dim=50); param_count('llama', 2, 50, 100)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"PYTHONPATH": str(root / "python")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 0, done.stderr

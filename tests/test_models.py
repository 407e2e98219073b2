import json
import subprocess
import sys

import pytest
import torch

from vgs.config import SpeechConfig
from vgs.models.registry import PAPER_PAIRS, info, model_config
from vgs.models.speech import SpeechEncoder
from vgs.tasks.factory import build_model, model_name

# Mortazavi 2020, Table 1: trainable float-32 parameters (audio embedder, image embedder).
TABLE_1 = {
    "DG4A2048": (63_898_816, 36_155_776),
    "DG4A1024": (16_228_544, 33_402_240),
    "DG3A1024": (11_503_808, 33_402_240),
    "DG2A2048": (26_125_504, 36_155_776),
    "DG2A1024": (6_779_072, 33_402_240),
}


@pytest.mark.parametrize("name", PAPER_PAIRS)
def test_parameter_counts_equal_table_1(name):
    got = info(name)
    assert (got["speech_params"], got["image_params"]) == TABLE_1[name]


def test_info_command_prints_json():
    out = subprocess.run(
        [sys.executable, "-m", "vgs.models", "info", "DG2A1024"], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out)["speech_params"] == 6_779_072


def test_unknown_model_name_is_a_clear_error():
    r = subprocess.run([sys.executable, "-m", "vgs.models", "info", "DG2B1024"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown model 'DG2B1024'" in r.stderr


def test_names_round_trip():
    for name in ("DG3A1024", "DG2A256-small", "DG1A128-tiny"):
        assert model_name(model_config(name)) == name


def test_speech_encoder_ignores_padding():
    torch.manual_seed(0)
    enc = SpeechEncoder(SpeechConfig(layers=2, conv_stride=2), input_dim=40, latent=32).eval()
    x = torch.randn(1, 50, 40)
    padded = torch.cat([x, torch.randn(1, 30, 40) * 5], dim=1)
    a = enc(x, torch.tensor([50]))
    b = enc(padded, torch.tensor([50]))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert a.norm(dim=-1).item() == pytest.approx(1.0, abs=1e-5)


def test_odd_latent_cannot_be_built():
    cfg = model_config("DG2A256-tiny")
    cfg.latent = 255
    with pytest.raises(ValueError, match="even"):
        build_model(cfg, 40)


def test_vgs_console_script_dispatches():
    import shutil
    from pathlib import Path

    exe = shutil.which("vgs") or str(Path(sys.executable).parent / "vgs")
    if not Path(exe).exists():
        pytest.skip("the vgs console script is not installed in this environment")
    out = subprocess.run([exe, "models", "info", "DG3A1024"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["speech_params"] == 11_503_808
    bad = subprocess.run([exe, "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr


def test_bigru_equals_packed_bidirectional_gru():
    """The unpacked BiGRU (reversal within each length) == torch's packed bidirectional GRU."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from vgs.models.blocks import BiGRU

    torch.manual_seed(0)
    ours = BiGRU(6, 5, layers=3)
    packed = torch.nn.GRU(6, 5, num_layers=3, batch_first=True, bidirectional=True)
    with torch.no_grad():  # the same weights, layer by layer and direction by direction
        for k in range(3):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ours.forward_layers[k], f"{name}_l0").copy_(getattr(packed, f"{name}_l{k}"))
                getattr(ours.backward_layers[k], f"{name}_l0").copy_(getattr(packed, f"{name}_l{k}_reverse"))
    x = torch.randn(4, 9, 6, requires_grad=True)
    lengths = torch.tensor([9, 3, 7, 1])
    want = pad_packed_sequence(
        packed(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[0],
        batch_first=True,
        total_length=9,
    )[0]
    got = ours(x, lengths)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    # gradients too (what training sees)
    (g_want,) = torch.autograd.grad(want.pow(2).sum(), x)
    (g_got,) = torch.autograd.grad(ours(x, lengths).pow(2).sum(), x)
    torch.testing.assert_close(g_got, g_want, atol=1e-6, rtol=1e-5)


def test_higy2020_multitask_encoders_have_the_papers_layer_split_and_widths():
    import torch

    from vgs.config import apply_overrides, base_config
    from vgs.tasks.factory import build_model

    def built(family):
        cfg = apply_overrides(base_config("higy2020"), {"model.family": family})
        with torch.device("meta"):
            return build_model(cfg.model, 39, 2048, 40)

    match = built("mtl-match")  # §3.1.5: shared 2 x 1024, speech->image 2 x 1024, speech->text attention only
    assert (match.shared.gru.layers, match.s2i.gru.layers, match.s2t.gru.layers) == (2, 2, 0)
    assert match.shared.gru.out_size == 2 * 1024 and match.s2i.gru.out_size == 2 * 1024
    assert not list(match.s2t.gru.parameters())  # an attention-only branch holds no GRU weights
    transcribe = built("mtl-transcribe")  # §3.1.4: shared 4 x 768, both branches 1 x 768
    assert (transcribe.shared.gru.layers, transcribe.s2i.gru.layers, transcribe.asr_gru.layers) == (4, 1, 1)
    assert transcribe.s2i.gru.out_size == transcribe.asr_gru.out_size == 2 * 768


def test_forward_only_gru_equals_torchs_packed_unidirectional_gru():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from vgs.models.blocks import BiGRU

    torch.manual_seed(0)
    ours = BiGRU(6, 5, layers=2, bidirectional=False)
    packed = torch.nn.GRU(6, 5, num_layers=2, batch_first=True)
    with torch.no_grad():
        for k in range(2):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ours.forward_layers[k], f"{name}_l0").copy_(getattr(packed, f"{name}_l{k}"))
    assert ours.out_size == 5 and not list(ours.backward_layers)
    x, lengths = torch.randn(3, 8, 6), torch.tensor([8, 2, 5])
    want = pad_packed_sequence(
        packed(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))[0],
        batch_first=True,
        total_length=8,
    )[0]
    torch.testing.assert_close(ours(x, lengths), want, atol=1e-6, rtol=1e-5)


def test_chrupala2019_base_is_seed_004s_three_task_model():
    from vgs.config import apply_overrides, base_config
    from vgs.data.featurisers import preset_dim

    cfg = apply_overrides(base_config("chrupala2019"), {"model.three.speech_layers": 2, "model.three.s2i": 1})
    assert preset_dim(cfg.data.features) == 13  # 12 MFCC + log energy, no deltas
    assert (cfg.train.epochs, cfg.train.lr, cfg.train.scheduler, cfg.train.clip_grad) == (25, 2e-4, "constant", 2.0)
    with torch.device("meta"):
        model = build_model(cfg.model, 13, 4096, 40)  # VGG-16's 4096-d features -> 1024
    assert model.shared.gru.out_size == 1024 and not list(model.shared.gru.backward_layers)  # forward GRUs of 1024
    assert (
        model.shared.front.conv.out_channels,
        model.shared.front.conv.kernel_size,
        model.shared.front.conv.stride,
    ) == (64, (6,), (2,))
    assert model.image(torch.zeros(2, 4096, device="meta")).shape == (2, 1024)
    from vgs.models.blocks import ScalarAttention, VectorialAttention

    assert isinstance(model.s2i.attention, ScalarAttention) and model.s2i.attention.U.out_features == 1
    with torch.device("meta"):
        default = build_model(apply_overrides(base_config("cpu-small"), {}).model, 40)
    assert isinstance(default.speech.attention, VectorialAttention)  # the 2020 papers stay vectorial


def test_scalar_attention_weighs_each_step_once():
    """Against the obvious loop: alpha_t = softmax_t(U tanh(W h_t)) over the valid steps."""
    from vgs.models.blocks import ScalarAttention

    torch.manual_seed(0)
    att = ScalarAttention(6, 4)
    h = torch.randn(2, 5, 6)
    lengths = [5, 3]
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]
    with torch.no_grad():
        got = att(h, mask)
    for b, n in enumerate(lengths):
        with torch.no_grad():
            e = [float(att.U(torch.tanh(att.W(h[b, t])))) for t in range(n)]
        w = torch.softmax(torch.tensor(e), 0)
        torch.testing.assert_close(got[b], sum(w[t] * h[b, t] for t in range(n)), rtol=1e-5, atol=1e-6)

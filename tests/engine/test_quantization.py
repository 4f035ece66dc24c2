"""Quantization engine: the field guide's hand-checked numbers (chapters 2, 3 and 6.5), AWQ, GPTQ."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfit.engine import quantization as qz
from llmfit.engine.quantization import Scheme
from llmfit.errors import UnitError

# --- 3.2 A rounding example with real numbers ----------------------------------------------------------


def test_guide_3_2_four_weights_symmetric_int4() -> None:
    """W = [0.18, -0.91, 1.62, 2.94], int4 [-7, 7]: s = 2.94 / 7 = 0.42, Q = [0, -2, 4, 7]."""
    assert qz.int_range(4, True) == (-7, 7)
    result = qz.scheme_result(qz.GUIDE_3_2, 4, Scheme.per_tensor)
    assert result.scales == [[pytest.approx(0.42)]]
    assert result.codes == [[0, -2, 4, 7]]
    assert result.dequantized[0] == pytest.approx([0.0, -0.84, 1.68, 2.94])
    errors = [d - w for d, w in zip(result.dequantized[0], qz.GUIDE_3_2[0], strict=True)]
    # The guide's error column: -0.18, +0.07, +0.06, 0.00 ("the small value 0.18 got crushed hardest").
    assert errors == pytest.approx([-0.18, 0.07, 0.06, 0.0], abs=1e-9)
    assert result.metrics.max_abs_error == pytest.approx(0.18)
    assert result.metrics.zero_fraction == pytest.approx(0.25)
    assert result.metrics.mse == pytest.approx((0.18**2 + 0.07**2 + 0.06**2) / 4)


# --- 3.3 Per-tensor vs per-channel --------------------------------------------------------------------


def test_guide_3_3_per_tensor_crushes_row_1() -> None:
    """One scale 2.80 / 7 = 0.40: row 1 -> [0, 0, 1, -1], row 2 -> [4, -5, 6, -7]."""
    result = qz.scheme_result(qz.GUIDE_3_3, 4, Scheme.per_tensor)
    assert result.scales == [[pytest.approx(0.40)]]
    assert result.codes == [[0, 0, 1, -1], [4, -5, 6, -7]]
    assert result.n_scales == 1


def test_guide_3_3_per_channel_scales() -> None:
    """s_row1 = 0.31 / 7 ~ 0.0443, s_row2 = 2.80 / 7 = 0.40; row 1 -> [3, -4, 6, -7]."""
    result = qz.scheme_result(qz.GUIDE_3_3, 4, Scheme.per_channel)
    assert result.scales is not None
    assert result.scales[0][0] == pytest.approx(0.31 / 7)
    assert round(result.scales[0][0], 4) == 0.0443
    assert result.scales[1][0] == pytest.approx(0.40)
    assert result.codes == [[3, -4, 6, -7], [4, -5, 6, -7]]


def test_guide_3_3_per_channel_beats_per_tensor() -> None:
    tensor = qz.scheme_result(qz.GUIDE_3_3, 4, Scheme.per_tensor)
    channel = qz.scheme_result(qz.GUIDE_3_3, 4, Scheme.per_channel)
    assert channel.metrics.mse < tensor.metrics.mse
    assert channel.rows[0].mse < tensor.rows[0].mse / 5
    assert channel.metrics.sqnr_db is not None and tensor.metrics.sqnr_db is not None
    assert channel.metrics.sqnr_db > tensor.metrics.sqnr_db
    # Row 2 sets the shared scale, so it is quantized identically either way.
    assert channel.rows[1].mse == pytest.approx(tensor.rows[1].mse)
    # ... and per-channel pays one more fp16 scale for it.
    assert channel.storage.total_bytes == tensor.storage.total_bytes + qz.SCALE_BYTES


# --- 6.5 exercise: the crushed row -------------------------------------------------------------------


def test_guide_6_5_row_rounds_to_all_zeros_under_shared_scale() -> None:
    result = qz.scheme_result(qz.GUIDE_6_5, 4, Scheme.per_tensor)
    assert result.scales == [[pytest.approx(0.40)]]
    assert result.codes is not None and result.codes[0] == [0, 0, 0, 0]
    assert result.rows[0].zero_fraction == 1.0
    assert result.rows[0].sqnr_db == pytest.approx(0.0)  # all signal lost: noise == signal
    channel = qz.scheme_result(qz.GUIDE_6_5, 4, Scheme.per_channel)
    assert channel.codes is not None and 0 not in channel.codes[0][1:]
    assert channel.rows[0].zero_fraction == 0.0


def test_number_line_shows_the_crushed_row_landing_on_zero() -> None:
    ex = qz.example("t", "t", "6.5", qz.GUIDE_6_5, 4, [Scheme.per_tensor, Scheme.per_channel])
    per_tensor, per_channel = ex.number_lines
    assert per_tensor.values == pytest.approx([0.05, -0.08, 0.11, -0.14])
    assert per_tensor.dequantized == [0.0, 0.0, 0.0, 0.0]
    assert len(per_tensor.grid) == 15 and per_tensor.grid[7] == 0.0
    assert per_tensor.scale == pytest.approx(0.40)
    assert per_channel.scale == pytest.approx(0.02)
    assert per_channel.codes == [2, -4, 6, -7]


# --- scheme mechanics -------------------------------------------------------------------------------


def test_group_wise_scales_per_group_and_ragged_last_group() -> None:
    w = np.array([[0.1, 0.2, 5.0, 6.0, 0.3]])
    q = qz.quantize_rtn(w, 4, Scheme.group, group_size=2)
    assert q.scales.shape == (1, 3)
    assert q.scales[0] == pytest.approx([0.2 / 7, 6.0 / 7, 0.3 / 7])
    result = qz.scheme_result(w, 4, Scheme.group, group_size=2)
    # 5 codes * 4 bits = 20 bits -> 3 bytes; 3 fp16 scales -> 6 bytes.
    assert result.storage.weights_bytes == 3
    assert result.storage.scales_bytes == 6


def test_asymmetric_zero_point_uses_all_levels() -> None:
    w = np.array([[0.0, 0.5, 1.0, 3.0]])
    q = qz.quantize_rtn(w, 4, Scheme.per_tensor, symmetric=False)
    assert qz.int_range(4, False) == (0, 15)
    assert q.scales[0, 0] == pytest.approx(3.0 / 15)
    assert q.zero_points[0, 0] == 0
    assert q.codes[0].tolist() == [0, 2, 5, 15]
    neg = qz.quantize_rtn(np.array([[-1.0, 2.0]]), 4, Scheme.per_tensor, symmetric=False)
    assert neg.zero_points[0, 0] == 5  # round(1 / (3 / 15))
    assert neg.dequantized[0] == pytest.approx([-1.0, 2.0])
    stored = qz.scheme_result(w, 4, Scheme.per_tensor, symmetric=False).storage
    assert stored.zero_points_bytes == 1


def test_storage_bytes_int4_group_128() -> None:
    """4096 x 4096 at 4 bits, group 128, fp16 scales: 8 MiB codes + 32 Ki scales * 2 B = 4.125 bits/weight."""
    s = qz.storage_bytes(4096 * 4096, 4096 * 32, 4, True)
    assert s.weights_bytes == 8 * 2**20
    assert s.scales_bytes == 4096 * 32 * 2
    assert s.bits_per_weight == pytest.approx(4.125)
    assert qz.storage_bytes(4096 * 4096, 4096 * 32, 4, False).bits_per_weight == pytest.approx(4.15625)


def test_bits_out_of_range_is_a_unit_error() -> None:
    with pytest.raises(UnitError, match=r"2\.\.8"):
        qz.int_range(9, True)
    with pytest.raises(UnitError):
        qz.quantize_rtn([[1.0, 2.0]], 4, Scheme.group, group_size=0)
    with pytest.raises(UnitError, match="NaN"):
        qz.as_matrix([1.0, float("nan")])


def test_zero_matrix_has_no_division_by_zero() -> None:
    result = qz.scheme_result([[0.0, 0.0]], 4, Scheme.per_channel)
    assert result.metrics.mse == 0.0 and result.metrics.sqnr_db is None
    assert result.metrics.zero_fraction == 0.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=-100, max_value=100, allow_nan=False), min_size=1, max_size=40),
    st.integers(min_value=2, max_value=8),
    st.booleans(),
)
def test_error_at_most_half_a_step(values: list[float], bits: int, symmetric: bool) -> None:
    """For values inside the quantizer's range, |w - w_hat| <= s / 2 (round-to-nearest)."""
    q = qz.quantize_rtn([values], bits, Scheme.per_tensor, symmetric=symmetric)
    step = float(q.scales[0, 0])
    assert np.max(np.abs(np.array(values) - q.dequantized[0])) <= step / 2 * (1 + 1e-9) + 1e-12


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=-10, max_value=10, allow_nan=False), min_size=2, max_size=16),
       st.integers(min_value=2, max_value=7))
def test_more_bits_never_hurt(values: list[float], bits: int) -> None:
    """Same range, finer grid: per-tensor symmetric error does not grow from b to b+1 bits (max error)."""
    low = qz.scheme_result([values], bits, Scheme.per_tensor).metrics
    high = qz.scheme_result([values], bits + 1, Scheme.per_tensor).metrics
    assert high.max_abs_error <= qz.quantize_rtn([values], bits, Scheme.per_tensor).scales[0, 0] / 2 + 1e-12
    assert low.max_abs_error <= qz.quantize_rtn([values], bits, Scheme.per_tensor).scales[0, 0] / 2 + 1e-12


# --- 3.5 AWQ -----------------------------------------------------------------------------------------


def test_guide_3_5_awq_toy_contributions_and_error() -> None:
    """Channel A: 0.20 x 20 = 4.0; channel B: 1.20 x 0.5 = 0.6. Plain int4 rounds A's 0.20 to s = 1.2/7
    (error 0.0286 x 20 = 0.57 on the output); activation-aware scaling protects A."""
    awq = qz.awq_from_magnitudes(qz.GUIDE_AWQ_WEIGHTS, qz.GUIDE_AWQ_ACTIVATIONS, 4, Scheme.per_channel)
    assert awq.contributions == [[pytest.approx(4.0), pytest.approx(0.6)]]
    assert awq.rtn_dequantized == [[pytest.approx(1.2 / 7), pytest.approx(1.2)]]
    assert awq.rtn_output_error == pytest.approx((0.2 - 1.2 / 7) * 20)
    assert awq.search[0].alpha == 0.0
    assert awq.search[0].output_error == pytest.approx(awq.rtn_output_error)  # alpha 0 is plain rounding
    assert awq.search[-1].alpha == 1.0 and len(awq.search) == 21
    assert awq.awq_output_error < awq.rtn_output_error / 10
    assert min(a.output_error for a in awq.search) == awq.awq_output_error
    assert 0 < awq.best_alpha <= 1
    assert awq.awq_dequantized is not None and awq.awq_dequantized[0][0] == pytest.approx(0.2, abs=1e-3)


def test_awq_needs_one_activation_per_column() -> None:
    with pytest.raises(UnitError, match="2 values"):
        qz.awq_from_magnitudes([[0.2, 1.2]], [1.0], 4, Scheme.per_channel)


def test_awq_on_calibration_with_outlier_channels_beats_rtn() -> None:
    w = qz.generated_weights(16, 64, seed=3)
    x = qz.outlier_calibration(64, 128, seed=3)
    awq = qz.awq_search(w, x, 4, Scheme.group, group_size=16)
    assert awq.awq_output_error <= awq.rtn_output_error


# --- 3.4 GPTQ -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "group_size", "symmetric"), [
    (Scheme.per_channel, None, True),
    (Scheme.group, 16, True),
    (Scheme.group, 16, False),
    (Scheme.per_tensor, None, True),
])
def test_gptq_beats_round_to_nearest_on_outlier_case(
    scheme: Scheme, group_size: int | None, symmetric: bool
) -> None:
    """||W X - W_hat X||_F: GPTQ's error feedback through the inverse Hessian beats plain rounding."""
    w = qz.generated_weights(24, 64, seed=7)
    x = qz.outlier_calibration(64, 256, seed=7)
    result = qz.gptq_compare(w, x, 4, scheme, group_size=group_size, symmetric=symmetric, block_size=32)
    assert result.gptq_output_error < 0.8 * result.rtn_output_error
    assert result.gptq_relative_error < result.rtn_relative_error
    # GPTQ does not minimise the weight error: it moves weights to cancel output error.
    assert result.gptq_weight_mse > result.rtn_weight_mse


def test_gptq_codes_stay_on_the_grid() -> None:
    w = qz.generated_weights(8, 32, seed=1)
    x = qz.outlier_calibration(32, 64, seed=1)
    w_hat, block = qz.gptq_quantize(w, x, 3, Scheme.per_channel, block_size=8)
    assert block == 8
    scales = qz.quantize_rtn(w, 3, Scheme.per_channel).scales
    codes = w_hat / scales
    assert np.allclose(codes, np.rint(codes)) and np.max(np.abs(np.rint(codes))) <= 3


def test_gptq_with_identity_hessian_is_round_to_nearest() -> None:
    """With X X^T proportional to I there is nothing to feed back into: GPTQ == RTN."""
    w = qz.generated_weights(4, 16, seed=2)
    x = np.eye(16) * 3.0
    w_hat, _ = qz.gptq_quantize(w, x, 4, Scheme.per_channel, damp=0.0)
    assert np.allclose(w_hat, qz.quantize_rtn(w, 4, Scheme.per_channel).dequantized)


def test_gptq_bad_calibration_shape() -> None:
    with pytest.raises(UnitError, match="calibration"):
        qz.gptq_quantize(np.ones((2, 4)), np.ones((3, 5)), 4, Scheme.per_channel)


# --- 2.2 / 2.3 number formats ---------------------------------------------------------------------


def _fmt(name: str) -> qz.FormatInfo:
    return next(f for f in qz.formats_table() if f.name == name)


@pytest.mark.parametrize(("name", "np_type"), [("fp16", np.float16), ("fp32", np.float32)])
def test_float_formats_match_numpy_finfo(name: str, np_type: type) -> None:
    info, fi = _fmt(name), np.finfo(np_type)
    assert info.largest == float(fi.max)
    assert info.smallest_normal == float(fi.smallest_normal)
    assert info.smallest_subnormal == float(fi.smallest_subnormal)
    assert info.spacing_near_one == float(fi.eps)
    assert info.spacing_near_largest == float(fi.max) - float(np.nextafter(fi.max, np_type(0)))
    assert info.mantissa_bits == fi.nmant and info.bits == fi.bits
    assert info.points_near_one[3] == float(np.nextafter(np_type(1), np_type(2)))
    assert info.points_near_one[1] == float(np.nextafter(np_type(1), np_type(0)))


def test_fp8_and_bf16_from_definitions() -> None:
    assert _fmt("fp8-e4m3").largest == 448.0  # OCP E4M3FN
    assert _fmt("fp8-e5m2").largest == 57344.0
    assert _fmt("fp8-e4m3").smallest_subnormal == 2.0**-9
    assert _fmt("bf16").largest == pytest.approx(3.3895313892515355e38)
    assert _fmt("bf16").spacing_near_one == 2.0**-7
    assert _fmt("bf16").smallest_normal == float(np.finfo(np.float32).smallest_normal)  # fp32's range


def test_float_formats_match_ml_dtypes_when_installed() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    for name, dtype in (("bf16", ml_dtypes.bfloat16), ("fp8-e4m3", ml_dtypes.float8_e4m3fn),
                        ("fp8-e5m2", ml_dtypes.float8_e5m2)):
        fi = ml_dtypes.finfo(dtype)
        assert _fmt(name).largest == float(fi.max)
        assert _fmt(name).smallest_normal == float(fi.smallest_normal)
        assert _fmt(name).spacing_near_one == float(fi.eps)


def test_guide_2_3_int4_number_line_scale_one_seventh() -> None:
    """int4 near 1.0: 0.57 0.71 0.86 1.00 1.14 1.29 1.43 (scale 1/7); codes 8..10 are beyond int4's 7."""
    int4 = _fmt("int4")
    assert [round(p, 2) for p in int4.points_near_one] == [0.57, 0.71, 0.86, 1.00, 1.14, 1.29, 1.43]
    assert int4.points_in_range == [True, True, True, True, False, False, False]
    assert (int4.qmin, int4.qmax) == (-7, 7) and int4.largest == pytest.approx(1.0)
    int8 = _fmt("int8")
    assert [round(p, 2) for p in int8.points_near_one] == [0.97, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03]
    assert int8.qmax == 127 and all(int8.points_in_range)


def test_int_format_custom_scale_and_bad_scale() -> None:
    assert qz.int_format(4, 0.25).points_near_one[3] == 1.0
    with pytest.raises(UnitError):
        qz.int_format(4, 0.0)


# --- the default walkthrough -------------------------------------------------------------------------


def test_walkthrough_reproduces_the_guide() -> None:
    demo = qz.walkthrough()
    names = [e.name for e in demo.examples]
    assert names == ["guide_3_2", "guide_3_3", "guide_6_5"]
    assert demo.examples[0].schemes[0].codes == [[0, -2, 4, 7]]
    assert demo.awq[0].awq_output_error < demo.awq[0].rtn_output_error
    assert demo.gptq[0].gptq_output_error < demo.gptq[0].rtn_output_error
    assert {f.name for f in demo.formats} >= {"fp32", "fp16", "bf16", "fp8-e4m3", "fp8-e5m2", "int8", "int4"}
    assert math.isfinite(demo.gptq[0].rtn_relative_error)

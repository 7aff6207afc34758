"""DUSt3R model configurations: named released configs, tiny test configs, and parsing.

The released checkpoints store their constructor as a string under `args.model`, e.g.
`AsymmetricCroCo3DStereo(pos_embed='RoPE100', img_size=(512, 512), head_type='dpt', ...)`.
We never evaluate it: `Dust3rConfig.from_ctor_string` reads its keyword arguments as literal
data with `ast`, and everything else comes from our own named configs.
"""

from __future__ import annotations

import ast
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping

# The DPT head sizes `create_dpt_head` hard-codes in the official code.
OFFICIAL_DPT_FEATURE_DIM = 256
OFFICIAL_DPT_LAYER_DIMS = (96, 192, 384, 768)


@dataclass(frozen=True)
class Dust3rConfig:
    """Everything that shapes an `AsymmetricCroCo3DStereo`-compatible network.

    img_size: the square training size; inference accepts any multiple of `patch_size`,
    it only sets the default preprocessing size (512 -> long side 512, 224 -> short side 224).
    depth_mode / conf_mode: (mode, vmin, vmax) as in the official heads (released: "exp").
    dpt_*: DPT head sizes (official: feature 256, last 128, layers 96/192/384/768).
    """

    enc_embed_dim: int = 1024
    enc_depth: int = 24
    enc_num_heads: int = 16
    dec_embed_dim: int = 768
    dec_depth: int = 12
    dec_num_heads: int = 12
    head_type: str = "dpt"
    img_size: int = 512
    patch_size: int = 16
    mlp_ratio: float = 4.0
    rope_freq: float = 100.0
    norm_im2_in_dec: bool = True
    depth_mode: tuple[str, float, float] = ("exp", -math.inf, math.inf)
    conf_mode: tuple[str, float, float] = ("exp", 1.0, math.inf)
    dpt_feature_dim: int = OFFICIAL_DPT_FEATURE_DIM
    dpt_last_dim: int = OFFICIAL_DPT_FEATURE_DIM // 2
    dpt_layer_dims: tuple[int, int, int, int] = OFFICIAL_DPT_LAYER_DIMS

    def __post_init__(self) -> None:
        if self.head_type not in ("dpt", "linear"):
            raise ValueError(f"head_type must be 'dpt' or 'linear', got {self.head_type!r}")
        if self.enc_embed_dim % self.enc_num_heads or self.dec_embed_dim % self.dec_num_heads:
            raise ValueError("embedding dims must be multiples of the head counts")
        if self.head_type == "dpt" and self.dec_depth < 4:
            raise ValueError("the DPT head hooks 4 decoder layers: dec_depth must be >= 4")
        if self.depth_mode[0] not in ("exp", "square", "linear"):
            raise ValueError(f"depth_mode must be exp/square/linear, got {self.depth_mode}")
        if self.depth_mode[1:] != (-math.inf, math.inf):
            raise ValueError(f"bounded depth modes are not supported, got {self.depth_mode}")
        if self.conf_mode[0] not in ("exp", "sigmoid"):
            raise ValueError(f"conf_mode must be exp/sigmoid, got {self.conf_mode}")

    @property
    def dpt_hooks(self) -> tuple[int, int, int, int]:
        """Indices into [encoder output, decoder layer 1..L] the DPT head reads."""
        depth = self.dec_depth
        return (0, depth * 2 // 4, depth * 3 // 4, depth)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, conf: Mapping[str, Any]) -> "Dust3rConfig":
        """Build from our own field names (unknown keys are an error, not silently dropped)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(conf) - names)
        if unknown:
            raise ValueError(f"unknown DUSt3R config keys {unknown} (known: {sorted(names)})")
        values = dict(conf)
        for key in ("depth_mode", "conf_mode"):
            if key in values:
                values[key] = _parse_mode(values[key])
        if "dpt_layer_dims" in values:
            values["dpt_layer_dims"] = tuple(int(v) for v in values["dpt_layer_dims"])
        return cls(**values)

    @classmethod
    def from_ctor_kwargs(
        cls, kwargs: Mapping[str, Any], dpt_sizes: Mapping[str, Any] | None = None
    ) -> "Dust3rConfig":
        """From the official `AsymmetricCroCo3DStereo(**kwargs)` keyword names.

        dpt_sizes: optional {"feature_dim", "last_dim", "layer_dims"} overriding the sizes the
        official `create_dpt_head` hard-codes (only tiny test networks change them).
        """
        if kwargs.get("pos_embed", "RoPE100")[:4] != "RoPE":
            raise ValueError(
                f"only RoPE position embeddings are supported, got {kwargs['pos_embed']}"
            )
        if kwargs.get("output_mode", "pts3d") != "pts3d":
            raise ValueError(f"only output_mode='pts3d' is supported, got {kwargs['output_mode']}")
        img_size = kwargs.get("img_size", 224)
        if isinstance(img_size, (list, tuple)):
            img_size = max(int(v) for v in img_size)
        values: dict[str, Any] = {
            "img_size": int(img_size),
            "rope_freq": float(kwargs.get("pos_embed", "RoPE100")[4:]),
            "head_type": kwargs.get("head_type", "linear"),
        }
        for key in (
            "enc_embed_dim",
            "enc_depth",
            "enc_num_heads",
            "dec_embed_dim",
            "dec_depth",
            "dec_num_heads",
            "patch_size",
        ):
            if key in kwargs:
                values[key] = int(kwargs[key])
        # CroCoNet's own defaults when the ctor string leaves them out.
        croco_defaults = {
            "enc_embed_dim": 768,
            "enc_depth": 12,
            "enc_num_heads": 12,
            "dec_embed_dim": 512,
            "dec_depth": 8,
            "dec_num_heads": 16,
        }
        for key, value in croco_defaults.items():
            values.setdefault(key, value)
        if "mlp_ratio" in kwargs:
            values["mlp_ratio"] = float(kwargs["mlp_ratio"])
        if "norm_im2_in_dec" in kwargs:
            values["norm_im2_in_dec"] = bool(kwargs["norm_im2_in_dec"])
        for key in ("depth_mode", "conf_mode"):
            if key in kwargs:
                values[key] = _parse_mode(kwargs[key])
        if dpt_sizes:
            values["dpt_feature_dim"] = int(dpt_sizes["feature_dim"])
            values["dpt_last_dim"] = int(dpt_sizes["last_dim"])
            values["dpt_layer_dims"] = tuple(int(v) for v in dpt_sizes["layer_dims"])
        return cls(**values)

    @classmethod
    def from_ctor_string(cls, ctor: str) -> "Dust3rConfig":
        """Parse `AsymmetricCroCo3DStereo(k=v, ...)` as data (literals only, never evaluated)."""
        return cls.from_ctor_kwargs(parse_ctor_string(ctor))


def _parse_mode(mode: Any) -> tuple[str, float, float]:
    name, vmin, vmax = mode
    return (str(name), float(vmin), float(vmax))


def parse_ctor_string(ctor: str) -> dict[str, Any]:
    """Keyword arguments of a constructor-call string, read as literals.

    Accepts numbers, strings, tuples/lists, booleans and the names `inf` / `-inf` (the
    official strings write `depth_mode=('exp', -inf, inf)`). Anything else is rejected.
    """
    try:
        tree = ast.parse(ctor.strip(), mode="eval")
    except SyntaxError as err:
        raise ValueError(f"not a constructor call: {ctor[:80]!r} ({err})") from None
    call = tree.body
    if not isinstance(call, ast.Call) or call.args:
        raise ValueError(f"expected `Name(key=value, ...)`, got {ctor[:80]!r}")
    return {kw.arg: literal_value(kw.value) for kw in call.keywords if kw.arg is not None}


def literal_value(node: ast.AST) -> Any:
    """A literal (number, string, bool, tuple/list, `inf`) from an expression node."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id == "inf":
        return math.inf
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = literal_value(node.operand)
        if not isinstance(value, (int, float)):
            raise ValueError("unary sign on a non-number in a constructor string")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(literal_value(e) for e in node.elts)
    raise ValueError(f"unsupported expression in a constructor string: {ast.dump(node)[:80]}")


_VIT_LARGE_BASE_DECODER = Dust3rConfig()

NAMED_CONFIGS: dict[str, Dust3rConfig] = {
    "DUSt3R_ViTLarge_BaseDecoder_512_dpt": _VIT_LARGE_BASE_DECODER,
    "DUSt3R_ViTLarge_BaseDecoder_512_linear": replace(_VIT_LARGE_BASE_DECODER, head_type="linear"),
    "DUSt3R_ViTLarge_BaseDecoder_224_linear": replace(
        _VIT_LARGE_BASE_DECODER, head_type="linear", img_size=224
    ),
}

# A small random network for CPU tests of the pipeline plumbing (its outputs are meaningless).
TINY_CONFIG = Dust3rConfig(
    enc_embed_dim=32,
    enc_depth=2,
    enc_num_heads=2,
    dec_embed_dim=32,
    dec_depth=4,
    dec_num_heads=2,
    head_type="dpt",
    img_size=64,
    dpt_feature_dim=16,
    dpt_last_dim=8,
    dpt_layer_dims=(8, 8, 16, 16),
)


def infer_config(state: Mapping[str, Any], base: Dust3rConfig | None = None) -> Dust3rConfig:
    """The config whose parameter shapes match `state` (a DUSt3R state dict).

    Widths, depths and head sizes are read off the tensor shapes; head counts cannot be, so
    they come from `base` when its widths match, else from the released convention of
    64-dimensional attention heads.
    """

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise KeyError(f"not a DUSt3R state dict: missing {key}")
        return tuple(state[key].shape)

    enc_dim, _, patch, _ = shape("patch_embed.proj.weight")
    dec_dim = shape("decoder_embed.weight")[0]
    enc_depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("enc_blocks."))
    dec_depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("dec_blocks."))
    mlp_ratio = shape("enc_blocks.0.mlp.fc1.weight")[0] / enc_dim
    head_type = "dpt" if any(k.startswith("downstream_head1.dpt.") for k in state) else "linear"
    base = base or _VIT_LARGE_BASE_DECODER
    widths_match = (base.enc_embed_dim, base.dec_embed_dim) == (enc_dim, dec_dim)
    values: dict[str, Any] = {
        "enc_embed_dim": enc_dim,
        "enc_depth": enc_depth,
        "dec_embed_dim": dec_dim,
        "dec_depth": dec_depth,
        "patch_size": patch,
        "mlp_ratio": mlp_ratio,
        "head_type": head_type,
        "enc_num_heads": base.enc_num_heads if widths_match else max(1, enc_dim // 64),
        "dec_num_heads": base.dec_num_heads if widths_match else max(1, dec_dim // 64),
        "norm_im2_in_dec": "dec_blocks.0.norm_y.weight" in state,
    }
    if head_type == "dpt":
        prefix = "downstream_head1.dpt."
        values["dpt_feature_dim"] = shape(prefix + "scratch.refinenet1.out_conv.weight")[0]
        values["dpt_last_dim"] = shape(prefix + "head.2.weight")[0]
        values["dpt_layer_dims"] = tuple(
            shape(f"{prefix}act_postprocess.{i}.0.weight")[0] for i in range(4)
        )
    return replace(base, **values)


__all__ = ["Dust3rConfig", "NAMED_CONFIGS", "TINY_CONFIG", "infer_config", "parse_ctor_string"]

#!/usr/bin/env python3
"""The reference numeral's CLIP is checked against (tests/test_clip.cpp, ClipReference.*).

Writes tests/golden/clip_tiny.safetensors: a tiny CLIP with seeded random weights in Hugging
Face's names, fixed inputs, and what the reference computes from them:
  - the forward pass of HF's CLIPModel (transformers/models/clip/modeling_clip.py: pre-LN
    encoder layers, quick-GELU, causal mask, pooling at the end-of-text token, projections,
    logit_scale) written out in plain PyTorch, independently of numeral's C++;
  - HF CLIPImageProcessor's preprocessing of a fixed 28x28 grey digit: PIL bicubic resize of the
    shortest side, centre crop, RGB, /255, CLIP's mean and std (PIL does the resizing, as in HF).
Where `transformers` is importable (the GPU machine has it), the same weights are also run
through transformers.CLIPModel and the two references must agree, or the script fails.

Runs with Debian's python3-torch (1.13), numpy and PIL:  /usr/bin/python3 bench/clip_reference.py
"""
import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CONFIG = {
    "model_type": "clip",
    "projection_dim": 24,
    "logit_scale_init_value": 2.6592,
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "image_size": 32, "patch_size": 8,
                      "num_channels": 3, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
    "text_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 16,
                    "eos_token_id": 99, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5},
}
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def random_weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    v, t, p = CONFIG["vision_config"], CONFIG["text_config"], CONFIG["projection_dim"]
    w = {}

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    def tower(prefix, c):
        d, m = c["hidden_size"], c["intermediate_size"]
        for i in range(c["num_hidden_layers"]):
            q = f"{prefix}.encoder.layers.{i}."
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                w[q + f"self_attn.{proj}.weight"] = rnd(d, d)
                w[q + f"self_attn.{proj}.bias"] = rnd(d, scale=0.05)
            for ln in ("layer_norm1", "layer_norm2"):
                w[q + f"{ln}.weight"] = 1 + rnd(d, scale=0.1)
                w[q + f"{ln}.bias"] = rnd(d, scale=0.05)
            w[q + "mlp.fc1.weight"], w[q + "mlp.fc1.bias"] = rnd(m, d), rnd(m, scale=0.05)
            w[q + "mlp.fc2.weight"], w[q + "mlp.fc2.bias"] = rnd(d, m), rnd(d, scale=0.05)

    d = t["hidden_size"]
    w["text_model.embeddings.token_embedding.weight"] = rnd(t["vocab_size"], d, scale=1.0)
    w["text_model.embeddings.position_embedding.weight"] = rnd(t["max_position_embeddings"], d)
    tower("text_model", t)
    w["text_model.final_layer_norm.weight"] = 1 + rnd(d, scale=0.1)
    w["text_model.final_layer_norm.bias"] = rnd(d, scale=0.05)
    d, ps = v["hidden_size"], v["patch_size"]
    n = (v["image_size"] // ps) ** 2
    w["vision_model.embeddings.class_embedding"] = rnd(d, scale=1.0)
    w["vision_model.embeddings.patch_embedding.weight"] = rnd(d, 3, ps, ps, scale=0.1)
    w["vision_model.embeddings.position_embedding.weight"] = rnd(n + 1, d)
    for ln in ("pre_layrnorm", "post_layernorm"):
        w[f"vision_model.{ln}.weight"] = 1 + rnd(d, scale=0.1)
        w[f"vision_model.{ln}.bias"] = rnd(d, scale=0.05)
    tower("vision_model", v)
    w["visual_projection.weight"] = rnd(p, v["hidden_size"])
    w["text_projection.weight"] = rnd(p, t["hidden_size"])
    w["logit_scale"] = torch.tensor(CONFIG["logit_scale_init_value"])
    return w


# --- HF CLIPModel's forward pass, plainly -------------------------------------------------
def layer_norm(x, w, prefix, eps):
    return torch.nn.functional.layer_norm(x, x.shape[-1:], w[prefix + ".weight"],
                                          w[prefix + ".bias"], eps)


def linear(x, w, prefix, bias=True):
    return torch.nn.functional.linear(x, w[prefix + ".weight"], w[prefix + ".bias"] if bias else None)


def encoder(x, w, prefix, c, mask=None):
    b, l, d = x.shape
    h = c["num_attention_heads"]
    dh = d // h
    for i in range(c["num_hidden_layers"]):
        p = f"{prefix}.encoder.layers.{i}."
        r = x
        x = layer_norm(x, w, p + "layer_norm1", c["layer_norm_eps"])
        q = linear(x, w, p + "self_attn.q_proj") * dh ** -0.5
        k = linear(x, w, p + "self_attn.k_proj")
        v = linear(x, w, p + "self_attn.v_proj")
        q, k, v = (t.view(b, l, h, dh).transpose(1, 2) for t in (q, k, v))
        s = q @ k.transpose(-1, -2)
        if mask is not None:
            s = s + mask
        x = (s.softmax(-1) @ v).transpose(1, 2).reshape(b, l, d)
        x = r + linear(x, w, p + "self_attn.out_proj")
        r = x
        x = layer_norm(x, w, p + "layer_norm2", c["layer_norm_eps"])
        x = linear(x, w, p + "mlp.fc1")
        x = x * torch.sigmoid(1.702 * x)
        x = r + linear(x, w, p + "mlp.fc2")
    return x


def image_embeds(w, pixels):
    c = CONFIG["vision_config"]
    e = torch.nn.functional.conv2d(pixels, w["vision_model.embeddings.patch_embedding.weight"],
                                   stride=c["patch_size"]).flatten(2).transpose(1, 2)
    cls = w["vision_model.embeddings.class_embedding"].expand(pixels.shape[0], 1, -1)
    x = torch.cat([cls, e], 1) + w["vision_model.embeddings.position_embedding.weight"]
    x = layer_norm(x, w, "vision_model.pre_layrnorm", c["layer_norm_eps"])
    x = encoder(x, w, "vision_model", c)
    pooled = layer_norm(x[:, 0], w, "vision_model.post_layernorm", c["layer_norm_eps"])
    return linear(pooled, w, "visual_projection", bias=False)


def text_embeds(w, ids):
    c = CONFIG["text_config"]
    l = ids.shape[1]
    x = w["text_model.embeddings.token_embedding.weight"][ids]
    x = x + w["text_model.embeddings.position_embedding.weight"][:l]
    mask = torch.full((l, l), float("-inf")).triu(1)
    x = encoder(x, w, "text_model", c, mask)
    x = layer_norm(x, w, "text_model.final_layer_norm", c["layer_norm_eps"])
    eos = (ids == c["eos_token_id"]).int().argmax(-1)  # the first end-of-text token
    return linear(x[torch.arange(ids.shape[0]), eos], w, "text_projection", bias=False)


def logits_per_image(w, i, t):
    i = i / i.norm(dim=-1, keepdim=True)
    t = t / t.norm(dim=-1, keepdim=True)
    return w["logit_scale"].exp() * i @ t.t()


# --- HF CLIPImageProcessor with PIL ---------------------------------------------------------
def digit_image():
    """A fixed 28x28 grey 'digit': a ring with a stroke, values 0..255."""
    yy, xx = np.mgrid[0:28, 0:28]
    r = np.hypot(yy - 13.5, xx - 12.0)
    img = np.clip(255 * np.exp(-((r - 8) ** 2) / 6), 0, 255)
    img[4:24, 19:22] = 255
    img += (yy * 3 + xx * 5) % 17  # fine texture so the filter's taps all matter
    return np.clip(img, 0, 255).astype(np.uint8)


def pil_preprocess(u8, size, crop):
    im = Image.fromarray(u8, mode="L").convert("RGB")
    w, h = im.size
    out_h, out_w = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    im = im.resize((out_w, out_h), resample=Image.BICUBIC)
    a = np.asarray(im).astype(np.float32)
    top, left = (out_h - crop) // 2, (out_w - crop) // 2
    a = a[top:top + crop, left:left + crop] / 255.0
    a = (a - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(a.transpose(2, 0, 1).copy()).unsqueeze(0)


def save_safetensors(path, tensors, metadata):
    names = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def check_with_transformers(w, pixels, ids, img, txt):
    try:
        import transformers
    except ImportError:
        print("transformers not installed: the plain-PyTorch reference stands alone")
        return
    model = transformers.CLIPModel(transformers.CLIPConfig(
        text_config=CONFIG["text_config"], vision_config=CONFIG["vision_config"],
        projection_dim=CONFIG["projection_dim"])).eval()
    missing, unexpected = model.load_state_dict(w, strict=False)
    assert not unexpected and all("position_ids" in m for m in missing), (missing, unexpected)
    with torch.no_grad():
        hf_img = model.get_image_features(pixel_values=pixels)
        hf_txt = model.get_text_features(input_ids=ids)
    for a, b, what in ((hf_img, img, "image"), (hf_txt, txt, "text")):
        err = (a - b).abs().max().item()
        assert err < 1e-4, f"{what} embeddings differ from transformers by {err}"
    print(f"transformers {transformers.__version__} agrees with the plain reference")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else
               Path(__file__).resolve().parent.parent / "tests/golden/clip_tiny.safetensors")
    torch.manual_seed(0)
    w = random_weights()
    g = torch.Generator().manual_seed(1)
    s = CONFIG["vision_config"]["image_size"]
    pixels = torch.randn(3, 3, s, s, generator=g)
    eos = CONFIG["text_config"]["eos_token_id"]
    # Three texts: start token 98, a few ids, the end token, then padding with the end token
    # (as HF's CLIP tokenizers pad); the last fills the context.
    rows = [[98, 5, 17, 42, eos], [98, 3, eos], [98] + list(range(10, 24)) + [eos]]
    ids = torch.tensor([r + [eos] * (16 - len(r)) for r in rows])
    with torch.no_grad():
        img, txt = image_embeds(w, pixels), text_embeds(w, ids)
        logits = logits_per_image(w, img, txt)
    check_with_transformers(w, pixels, ids, img, txt)
    u8 = digit_image()
    pre = pil_preprocess(u8, size=64, crop=56)
    tensors = {f"weights.{k}": v.float() for k, v in w.items()}
    tensors.update({
        "input.pixel_values": pixels, "input.input_ids": ids,
        "output.image_embeds": img, "output.text_embeds": txt, "output.logits_per_image": logits,
        "preprocess.image": torch.from_numpy(u8.astype(np.float32) / 127.5 - 1).view(1, 1, 28, 28),
        "preprocess.pixel_values": pre,
    })
    save_safetensors(out, tensors, {"config": json.dumps(CONFIG),
                                    "preprocess": json.dumps({"size": 64, "crop_size": 56}),
                                    "torch": torch.__version__})
    print(f"wrote {out}: image embeds {tuple(img.shape)}, text embeds {tuple(txt.shape)}")


if __name__ == "__main__":
    main()

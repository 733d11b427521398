"""Plain-JAX networks: pure ``init(key, in_shape, out_dim)`` and ``apply(params, x)``.

Inputs are batches of shape ``(batch, *in_shape)``; images are ``(H, W, C)`` (NHWC), and
one-dimensional signals are stored as ``(1, length, 1)`` so the same CNN serves both.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def _dense_init(key, fan_in: int, fan_out: int, gain: float = 2.0) -> dict:
    """He-normal weights (gain 2 for ReLU layers, 1 for the output layer), zero biases."""
    w = jax.random.normal(key, (fan_in, fan_out), jnp.float32) * math.sqrt(gain / fan_in)
    return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def _conv_init(key, kh: int, kw: int, c_in: int, c_out: int) -> dict:
    fan_in = kh * kw * c_in
    w = jax.random.normal(key, (kh, kw, c_in, c_out), jnp.float32) * math.sqrt(2.0 / fan_in)
    return {"w": w, "b": jnp.zeros((c_out,), jnp.float32)}


def conv2d(layer: dict, x, stride: int = 1, mask=None):
    """SAME-padded 2-D convolution, NHWC input, HWIO kernel (optionally masked)."""
    w = layer["w"] if mask is None else layer["w"] * mask
    y = jax.lax.conv_general_dilated(
        x, w, window_strides=(stride, stride), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + layer["b"]


def linear_init(key, in_shape: tuple[int, ...], out_dim: int) -> dict:
    """Logistic (or linear) regression: one dense layer on the flattened input."""
    return {"out": _dense_init(key, math.prod(in_shape), out_dim, gain=1.0)}


def linear_apply(params: dict, x):
    x = x.reshape(x.shape[0], -1)
    return x @ params["out"]["w"] + params["out"]["b"]


def mlp_init(key, in_shape: tuple[int, ...], out_dim: int, hidden: tuple[int, ...] = (128,)) -> dict:
    """A ReLU multi-layer perceptron with the given hidden widths."""
    sizes = [math.prod(in_shape), *hidden]
    keys = jax.random.split(key, len(hidden) + 1)
    layers = [_dense_init(k, a, b) for k, a, b in zip(keys, sizes, sizes[1:], strict=False)]
    return {"hidden": layers, "out": _dense_init(keys[-1], sizes[-1], out_dim, gain=1.0)}


def mlp_apply(params: dict, x):
    h = x.reshape(x.shape[0], -1)
    for layer in params["hidden"]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return h @ params["out"]["w"] + params["out"]["b"]


def cnn_init(key, in_shape: tuple[int, ...], out_dim: int, channels: tuple[int, int] = (16, 32)) -> dict:
    """Two 3x3 convolutions (the second with stride 2) and a dense read-out."""
    h, w, c = in_shape
    k1, k2, k3 = jax.random.split(key, 3)
    flat = math.ceil(h / 2) * math.ceil(w / 2) * channels[1]
    return {
        "conv1": _conv_init(k1, 3, 3, c, channels[0]),
        "conv2": _conv_init(k2, 3, 3, channels[0], channels[1]),
        "out": _dense_init(k3, flat, out_dim, gain=1.0),
    }


def cnn_apply(params: dict, x):
    h = jax.nn.relu(conv2d(params["conv1"], x))
    h = jax.nn.relu(conv2d(params["conv2"], h, stride=2))
    h = h.reshape(h.shape[0], -1)
    return h @ params["out"]["w"] + params["out"]["b"]

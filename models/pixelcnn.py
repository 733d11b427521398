"""A small PixelCNN on binarised images (van den Oord et al. 2016, "Pixel Recurrent Neural
Networks", §3.5): masked convolutions so that pixel (i, j) is predicted only from the pixels
above it and to its left. The loss is the negative log-likelihood in bits per dimension.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .nets import _conv_init, conv2d


def causal_mask(k: int, c_in: int, c_out: int, include_centre: bool):
    """Mask A (first layer, ``include_centre=False``) or B (later layers) for a k x k kernel."""
    mask = jnp.ones((k, k, c_in, c_out), jnp.float32)
    centre = k // 2
    mask = mask.at[centre, centre + (1 if include_centre else 0) :].set(0.0)
    return mask.at[centre + 1 :].set(0.0)


def init(key, in_shape: tuple[int, ...], channels: int = 32, layers: int = 3) -> dict:
    """Params of a masked-conv stack: a 5x5 type-A layer, ``layers`` 3x3 type-B layers, a 1x1 read-out."""
    c = in_shape[-1]
    keys = jax.random.split(key, layers + 2)
    return {
        "first": _conv_init(keys[0], 5, 5, c, channels),
        "body": [_conv_init(k, 3, 3, channels, channels) for k in keys[1:-1]],
        "out": _conv_init(keys[-1], 1, 1, channels, c),
    }


def binarise(x):
    """Pixels in [0, 1] to {0, 1}."""
    return (x > 0.5).astype(jnp.float32)


def logits(params: dict, x):
    """Per-pixel Bernoulli logits, shape of ``x``; ``x`` must already be binary."""
    c = x.shape[-1]
    channels = params["first"]["w"].shape[-1]
    h = jax.nn.relu(conv2d(params["first"], x, mask=causal_mask(5, c, channels, include_centre=False)))
    for layer in params["body"]:
        h = jax.nn.relu(conv2d(layer, h, mask=causal_mask(3, channels, channels, include_centre=True)))
    return conv2d(params["out"], h)


def bits_per_dim(params: dict, x):
    """Per-example negative log-likelihood of the binarised images, in bits per pixel."""
    x = binarise(x)
    z = logits(params, x)
    nats = x * jax.nn.softplus(-z) + (1 - x) * jax.nn.softplus(z)  # -log p(x | pixels before it)
    return nats.reshape(x.shape[0], -1).mean(axis=1) / math.log(2.0)

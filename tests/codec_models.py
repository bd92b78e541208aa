"""Small models for the codec tests: a linear VAE that emits any discrete likelihood's parameter layout."""

import numpy as np
import torch
from torch import nn

OUT_CHANNELS = {"bernoulli": 1, "discretized_gaussian": 2, "logistic_mixture": 10}


class TinyVAE(nn.Module):
    """A linear VAE emitting ``likelihood``'s parameter layout for images [C, H, W]."""

    def __init__(self, likelihood, shape, z_dim=4, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.likelihood, self.shape = likelihood, shape
        c, h, w = shape
        if likelihood == "categorical256":
            self.out = (256, c, h, w)
        elif likelihood == "logistic_mixture":
            self.out = ((10 if c == 3 else 3) * 2, h, w)  # K = 2 components
        else:
            self.out = (OUT_CHANNELS[likelihood] * c, h, w)
        self.enc = nn.Linear(c * h * w, 2 * z_dim)
        self.dec = nn.Linear(z_dim, int(np.prod(self.out)))
        with torch.no_grad():  # broad decoders: no level below the coder's 2^-24 probability floor
            self.dec.weight.mul_(0.3)
            self.dec.bias.mul_(0.3)

    def encode(self, x):
        ml = self.enc(x.flatten(1))
        mu, logvar = ml.chunk(2, dim=1)
        # means inside the prior's bucketed support (|z| < 3.4 at 2^12 buckets): a mean past the last bucket
        # edge is coded in at most P bits, below its KL, which a rate test would read as a gap
        return 3.0 * torch.tanh(mu / 3.0), logvar.clamp(-6, 2)

    def decode(self, z):
        return self.dec(z).view(-1, *self.out)


def images_for(likelihood, shape, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    top = 2 if likelihood == "bernoulli" else 256
    return torch.randint(0, top, (n, *shape), generator=g, dtype=torch.uint8)

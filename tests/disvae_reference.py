"""disentangling-vae's Burgess VAE and BetaH loss, as its repository has them, for the adapter tests.

disentangling-vae is not on PyPI, so its model and loss code is copied here from
disvae/models/{vae,encoders,decoders,losses}.py (MIT, Copyright (c) 2018 Schlumberger, see
../shared/reference/disentangling-vae/LICENSE): the same module names, layers, forward passes and loss
formulas. Left out: weights_init (the tests load checkpoints or seed torch's default init), the 32x32
branch, the storer and annealing bookkeeping. ``np.product`` (removed in NumPy 2) is ``np.prod``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class EncoderBurgess(nn.Module):
    def __init__(self, img_size, latent_dim=10):
        super().__init__()
        hid_channels, kernel_size, hidden_dim = 32, 4, 256
        self.latent_dim = latent_dim
        self.img_size = img_size
        self.reshape = (hid_channels, kernel_size, kernel_size)
        n_chan = self.img_size[0]
        cnn_kwargs = dict(stride=2, padding=1)
        self.conv1 = nn.Conv2d(n_chan, hid_channels, kernel_size, **cnn_kwargs)
        self.conv2 = nn.Conv2d(hid_channels, hid_channels, kernel_size, **cnn_kwargs)
        self.conv3 = nn.Conv2d(hid_channels, hid_channels, kernel_size, **cnn_kwargs)
        self.conv_64 = nn.Conv2d(hid_channels, hid_channels, kernel_size, **cnn_kwargs)
        self.lin1 = nn.Linear(int(np.prod(self.reshape)), hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, hidden_dim)
        self.mu_logvar_gen = nn.Linear(hidden_dim, self.latent_dim * 2)

    def forward(self, x):
        batch_size = x.size(0)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.conv_64(x))
        x = x.view((batch_size, -1))
        x = torch.relu(self.lin1(x))
        x = torch.relu(self.lin2(x))
        mu_logvar = self.mu_logvar_gen(x)
        mu, logvar = mu_logvar.view(-1, self.latent_dim, 2).unbind(-1)
        return mu, logvar


class DecoderBurgess(nn.Module):
    def __init__(self, img_size, latent_dim=10):
        super().__init__()
        hid_channels, kernel_size, hidden_dim = 32, 4, 256
        self.img_size = img_size
        self.reshape = (hid_channels, kernel_size, kernel_size)
        n_chan = self.img_size[0]
        self.lin1 = nn.Linear(latent_dim, hidden_dim)
        self.lin2 = nn.Linear(hidden_dim, hidden_dim)
        self.lin3 = nn.Linear(hidden_dim, int(np.prod(self.reshape)))
        cnn_kwargs = dict(stride=2, padding=1)
        self.convT_64 = nn.ConvTranspose2d(hid_channels, hid_channels, kernel_size, **cnn_kwargs)
        self.convT1 = nn.ConvTranspose2d(hid_channels, hid_channels, kernel_size, **cnn_kwargs)
        self.convT2 = nn.ConvTranspose2d(hid_channels, hid_channels, kernel_size, **cnn_kwargs)
        self.convT3 = nn.ConvTranspose2d(hid_channels, n_chan, kernel_size, **cnn_kwargs)

    def forward(self, z):
        batch_size = z.size(0)
        x = torch.relu(self.lin1(z))
        x = torch.relu(self.lin2(x))
        x = torch.relu(self.lin3(x))
        x = x.view(batch_size, *self.reshape)
        x = torch.relu(self.convT_64(x))
        x = torch.relu(self.convT1(x))
        x = torch.relu(self.convT2(x))
        x = torch.sigmoid(self.convT3(x))
        return x


class VAE(nn.Module):
    def __init__(self, img_size=(1, 64, 64), latent_dim=10):
        super().__init__()
        self.latent_dim = latent_dim
        self.img_size = img_size
        self.num_pixels = self.img_size[1] * self.img_size[2]
        self.encoder = EncoderBurgess(img_size, self.latent_dim)
        self.decoder = DecoderBurgess(img_size, self.latent_dim)

    def reparameterize(self, mean, logvar):
        if self.training:
            std = torch.exp(0.5 * logvar)
            eps = torch.randn_like(std)
            return mean + std * eps
        return mean

    def forward(self, x):
        latent_dist = self.encoder(x)
        latent_sample = self.reparameterize(*latent_dist)
        reconstruct = self.decoder(latent_sample)
        return reconstruct, latent_dist, latent_sample


def reconstruction_loss(data, recon_data):
    """``_reconstruction_loss(..., distribution="bernoulli")``: BCE summed over pixels, / batch (nats per
    image)."""
    batch_size = recon_data.size(0)
    return F.binary_cross_entropy(recon_data, data, reduction="sum") / batch_size


def kl_normal_loss(mean, logvar):
    """``_kl_normal_loss``: the batch mean of the KL of each latent dimension, summed (nats per image)."""
    latent_kl = 0.5 * (-1 - logvar + mean.pow(2) + logvar.exp()).mean(dim=0)
    return latent_kl.sum()


def beta_h_loss(data, recon_data, latent_dist, beta):
    """``BetaHLoss.__call__`` outside training annealing (``anneal_reg = 1``): rec + beta * KL."""
    return reconstruction_loss(data, recon_data) + beta * kl_normal_loss(*latent_dist)

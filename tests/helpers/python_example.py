import torch

from histae.loss import HistogramLoss
from histae.model import ConvAutoencoder

model = ConvAutoencoder()  # the reference network: 5,053,491 parameters
criterion = HistogramLoss(bins=50)  # every other argument as conf/loss/histogram.yaml
tiles = torch.rand(8, 3, 32, 32)  # (B, C, H, W) in [0, 1]
loss = criterion(model(tiles), tiles)  # a scalar
loss.backward()

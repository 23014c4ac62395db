"""RecurrentVarNet unit tests with tiny sizes."""

import numpy as np
import torch

from workbench.nets.mri_rvn import (
    Conv2dGRU,
    RecurrentVarNet,
    RecurrentVarNetBlock,
    rvn_loss,
    ssim_loss,
)
from workbench.physics.mri.fft import fft2c


def _data(n=2, c=3, h=16, w=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.complex(torch.randn(n, c, h, w, generator=g), torch.randn(n, c, h, w, generator=g))
    mask = (torch.rand(n, 1, 1, w, generator=g) > 0.5).float().expand(n, 1, h, w)
    maps = torch.complex(torch.randn(n, c, h, w, generator=g), torch.randn(n, c, h, w, generator=g))
    maps = maps / torch.sqrt((maps.abs() ** 2).sum(1, keepdim=True))
    return y * mask, mask, maps


def _tiny(**kw):
    torch.manual_seed(0)
    cfg = dict(
        num_steps=3,
        recurrent_hidden_channels=4,
        recurrent_num_layers=2,
        learned_initializer=True,
        initializer_channels=(2, 2, 4, 4),
    )
    cfg.update(kw)
    return RecurrentVarNet(**cfg)


def test_shapes_any_size_and_gradients():
    net = _tiny()
    for h, w in [(16, 12), (15, 9)]:
        y, m, s = _data(h=h, w=w)
        k = net(y, m, s)
        assert k.shape == y.shape and k.dtype == y.dtype
        img = net.image(k)
        assert img.shape == (2, h, w)
    loss = rvn_loss(img, img.detach() * 0.5 + 0.1)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    assert float(net.block_list[1].learning_rate.grad.abs()) > 0  # block 0 sees k = y


def test_block_with_zero_regulariser_returns_y_on_samples():
    blk = RecurrentVarNetBlock(4, 2)
    for p in blk.regularizer.conv_blocks[-1].parameters():
        torch.nn.init.zeros_(p)
    y, m, s = _data()
    k0 = y + m * torch.randn_like(y.real)  # a current estimate off the data
    k1, state = blk(k0, y, m, s, None)
    assert torch.allclose(k1 * m, y * m, atol=1e-5)
    assert state.shape == (2, 4, 16, 12, 2)


def test_gru_state_and_parameter_names():
    gru = Conv2dGRU(2, 8, 2, 3)
    out, h = gru(torch.randn(1, 2, 10, 10), None)
    assert out.shape == (1, 2, 10, 10) and h.shape == (1, 8, 10, 10, 3)
    names = set(_tiny(ser=True).state_dict())
    assert "block_list.0.learning_rate" in names
    assert "block_list.2.regularizer.conv_blocks.0.1.weight" in names  # 5x5 after replication pad
    assert _tiny().block_list[0].regularizer.conv_blocks[1][1].dilation == (2, 2)
    assert "block_list.0.regularizer.reset_gates.1.0.weight" in names
    assert any(n.startswith("initializer.conv_blocks") for n in names)
    assert any(n.startswith("sens_net.") for n in names)
    assert float(_tiny().block_list[0].regularizer.reset_gates[0][0].bias.detach().mean()) == -1.0


def test_parameter_sharing():
    shared = _tiny(no_parameter_sharing=False)
    assert len(shared.block_list) == 1
    y, m, s = _data()
    assert shared(y, m, s).shape == y.shape
    assert sum(p.numel() for p in shared.parameters()) < sum(
        p.numel() for p in _tiny().parameters()
    )


def test_ssim_loss_zero_for_identical():
    x = torch.rand(2, 16, 16)
    assert float(ssim_loss(x, x)) < 1e-6


def test_training_smoke_loss_decreases():
    from workbench.physics.mri.coils import acs_rss

    torch.manual_seed(0)
    g = np.random.default_rng(0)
    n, c, h, w = 4, 4, 16, 16
    img = torch.from_numpy(g.uniform(size=(n, h, w)).astype(np.float32))
    img = torch.nn.functional.avg_pool2d(img[:, None], 3, 1, 1)[:, 0]
    from workbench.physics.mri.coils import birdcage

    S = torch.from_numpy(birdcage(c, h, w)).expand(n, c, h, w)
    k = fft2c(S * img[:, None].to(torch.complex64))
    m = torch.zeros(n, 1, h, w)
    m[..., ::2] = 1
    m[..., 6:10] = 1
    y = k * m
    maps = acs_rss(y, m)
    net = _tiny()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    losses = []
    for _ in range(30):
        loss = rvn_loss(net.image(net(y, m, maps)), img)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_gru_state_is_pre_relu_by_default():
    torch.manual_seed(0)
    gru = Conv2dGRU(2, 4, 2, 2)
    with torch.no_grad():
        _, h = gru(torch.randn(1, 2, 8, 8), None)
    assert float(h.min()) < 0  # the reference stores h′ before the ReLU
    gru.state_relu = True
    with torch.no_grad():
        _, h = gru(torch.randn(1, 2, 8, 8), None)
    assert float(h.min()) >= 0

"""(Copy of shared/peer/torch_epoch.py for `cargo bench --bench train`: the digits path is
relative to this folder, and a `fullbatch` mode times one forward+backward over the whole
Fashion-MNIST training set.)

The peer a user would pick instead: idiomatic PyTorch (CPU, float32) prox-SGD on the same problems.

    python3 torch_epoch.py digits  [epochs] [reps]   # 64-100-100-10 on ../data/digits.csv
    python3 torch_epoch.py fashion [epochs] [reps]   # 784-256-256-10 on Debian's dataset-fashion-mnist

Prints 'seconds_per_epoch X' (median over reps). Model: nn.Linear layers, LeakyReLU(0.1) between
them, linear output; loss (1/n) sum_i ||f(x_i) - y_i||^2 on one-hot targets; torch.optim.SGD
(digits lr .02, fashion lr .01, momentum .9), batch 128, then row group soft-thresholding of
every weight matrix with threshold lambda*lr (lambda 1e-3 digits, 1e-4 fashion). Threads: all
cores (torch default). Set up once with: python3 -m venv v && v/bin/pip install torch numpy.
One epoch is 2.63 passes on digits and 2.253 on Fashion-MNIST in the project's pass units
(forward + backward matmul work over N samples, in units of one full forward pass)."""
import gzip, os, sys, time
import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))


def digits():
    a = np.loadtxt(os.path.join(HERE, "..", "..", "data", "digits.csv"), delimiter=",", skiprows=1, dtype=np.float32)
    y = a[:, 0].astype(np.int64)
    return torch.from_numpy(a[:, 1:]), torch.eye(10)[torch.from_numpy(y)], [64, 100, 100, 10], 0.02, 1e-3


def fashion():
    d = "/usr/share/datasets/fashion-mnist/"
    def idx(name):
        b = gzip.open(d + name, "rb").read()
        nd = b[3]
        shape = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
        return np.frombuffer(b, dtype=np.uint8, offset=4 + 4 * nd).reshape(shape)
    X = torch.from_numpy(idx("train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0)
    y = torch.from_numpy(idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    return X, torch.eye(10)[y], [784, 256, 256, 10], 0.01, 1e-4


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


@torch.no_grad()
def group_prox_(model, thr):
    for lin in (m for m in model if isinstance(m, nn.Linear)):
        nrm = torch.linalg.vector_norm(lin.weight, dim=1, keepdim=True)
        lin.weight.mul_((1.0 - thr / nrm.clamp_min(1e-30)).clamp_min_(0.0))


def epoch_seconds(X, Y, sizes, lr, lam, epochs):
    torch.manual_seed(0)
    model = mlp(sizes)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(X.shape[0], generator=g)
        for s in range(0, X.shape[0], 128):
            i = perm[s:s + 128]
            opt.zero_grad(set_to_none=True)
            loss = (model(X[i]) - Y[i]).pow(2).sum(1).mean()
            loss.backward()
            opt.step()
            group_prox_(model, lam * lr)
    return (time.perf_counter() - t0) / epochs


def fullbatch_seconds(X, Y, sizes):
    torch.manual_seed(0)
    model = mlp(sizes)
    t0 = time.perf_counter()
    model.zero_grad(set_to_none=True)
    loss = (model(X) - Y).pow(2).sum(1).mean()
    loss.backward()
    return time.perf_counter() - t0


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "digits"
    if which == "fullbatch":
        reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
        X, Y, sizes, _, _ = fashion()
        ts = sorted(fullbatch_seconds(X, Y, sizes) for _ in range(reps))
        print("seconds_fullbatch %.5f" % ts[len(ts) // 2])
        sys.exit(0)
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else (10 if which == "digits" else 1)
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    X, Y, sizes, lr, lam = {"digits": digits, "fashion": fashion}[which]()
    ts = sorted(epoch_seconds(X, Y, sizes, lr, lam, epochs) for _ in range(reps))
    print("seconds_per_epoch %.5f" % ts[len(ts) // 2])

"""History.plot: the curves of a real fit, and a clear error without matplotlib."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn as fnn


def fitted_history():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = fnn.Sequential([fnn.Dense(8, activation="relu"), fnn.Dense(2)], input_dim=5, seed=0)
    model.compile(loss="cross_entropy", optimizer=fnn.Adam(lr=0.01), metrics=["accuracy"])
    return model.fit(X, y, epochs=4, batch_size=32, validation_split=0.2, verbose=0)


def test_plot_draws_losses_and_metrics(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = fitted_history()
    fig = h.plot(path=tmp_path / "h.png")
    loss_ax, metric_ax = fig.axes
    assert [l.get_label() for l in loss_ax.get_lines()] == ["loss", "val_loss"]
    assert [l.get_label() for l in metric_ax.get_lines()] == ["accuracy", "val_accuracy"]
    x, yv = loss_ax.get_lines()[1].get_data()
    assert list(x) == [1, 2, 3, 4] and list(yv) == h.history["val_loss"]
    assert loss_ax.get_lines()[1].get_linestyle() == "--"
    assert (tmp_path / "h.png").stat().st_size > 1000

    fig2, ax = plt.subplots()
    assert h.plot("loss", ax=ax) is fig2 and len(ax.get_lines()) == 1
    with pytest.raises(KeyError, match="not in the history: nope"):
        h.plot(["nope"])
    plt.close("all")


def test_plot_without_matplotlib_says_what_to_install():
    code = ("import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
            "import fastnn\nh = fastnn.History()\n"
            "try:\n    h.plot()\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "History.plot needs matplotlib, which is not installed: pip install matplotlib"

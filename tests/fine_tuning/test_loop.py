"""The fine-tuning loop's epochs on a one-weight network whose every epoch is known: early stopping
keeps the best epoch; `average_epochs` runs every epoch and keeps the mean of the last ones' weights,
also across a kill and `resume`."""

import pytest

from tests.helpers.stores import requires_extra

requires_extra("torch", "pretrained")

import torch  # noqa: E402 - the extra's, checked above

from rakuten.fine_tuning.epochs import Checkpoint, Epoch  # noqa: E402
from rakuten.fine_tuning.loop import Training, optimizer_and_schedule, run_epochs  # noqa: E402


def epochs_of(network, checkpoint, epochs: int, average: int, resume: bool = False, killed_at: int | None = None):
    """`run_epochs` where epoch k sets the weight to k and the validation F1 falls every epoch
    (0.5 after epoch 1, 0.4 after epoch 2, ...): early stopping would keep epoch 1."""
    optimizing = optimizer_and_schedule([{"params": network.parameters(), "lr": 0.1}], 0.0, 0.1, epochs)

    def one_epoch(number, progress):
        if number == killed_at:
            raise KeyboardInterrupt  # a kill mid-epoch: the last checkpoint is the previous epoch's
        with torch.no_grad():
            network.weight.fill_(float(number))
        progress.update(1)
        return Epoch(number, 1.0, None, 0.1, 1.0, 1.0)

    def validate():
        return 0.6 - 0.1 * float(network.weight.detach().mean())

    training = Training("test fine-tuning", "rows", epochs, patience=1, resume=resume, average_epochs=average)
    return run_epochs(training, network, optimizing, checkpoint, 1, one_epoch, validate)


def test_early_stopping_keeps_the_best_epochs_weights(tmp_path):
    network = torch.nn.Linear(2, 1, bias=False)
    checkpoint = Checkpoint(tmp_path, "best")
    history = epochs_of(network, checkpoint, epochs=4, average=0)
    assert torch.equal(checkpoint.load()["state"]["best"]["weight"], torch.full((1, 2), 1.0))
    assert len(history) == 2  # epoch 2 was worse: patience 1 stops there
    assert torch.equal(network.weight, torch.full((1, 2), 1.0))


def test_averaging_runs_every_epoch_and_keeps_the_mean_of_the_last_ones(tmp_path, capsys):
    network = torch.nn.Linear(2, 1, bias=False)
    history = epochs_of(network, Checkpoint(tmp_path, "mean"), epochs=4, average=2)
    assert [epoch["val_f1_weighted"] for epoch in history] == pytest.approx([0.5, 0.4, 0.3, 0.2])
    assert torch.allclose(network.weight, torch.full((1, 2), 3.5))  # (3 + 4) / 2
    assert "the weights of epochs 3-4 averaged, val_f1_weighted 0.2500" in capsys.readouterr().out


def test_a_killed_averaging_resumes_with_the_sum_it_had(tmp_path, capsys):
    checkpoint = Checkpoint(tmp_path, "killed")
    with pytest.raises(KeyboardInterrupt):
        epochs_of(torch.nn.Linear(2, 1, bias=False), checkpoint, epochs=4, average=3, killed_at=4)
    saved = checkpoint.load()["state"]
    assert saved["best"] is None and set(saved["sum"]) == {"weight"}  # the mean is kept, not a best copy
    network = torch.nn.Linear(2, 1, bias=False)  # a new process: the weights come from the checkpoint
    history = epochs_of(network, checkpoint, epochs=4, average=3, resume=True)
    assert "resumed after epoch 3" in capsys.readouterr().out
    assert [epoch["val_f1_weighted"] for epoch in history] == pytest.approx([0.5, 0.4, 0.3, 0.2])
    assert torch.allclose(network.weight, torch.full((1, 2), 3.0))  # (2 + 3 + 4) / 3: epochs 2-3 from before the kill

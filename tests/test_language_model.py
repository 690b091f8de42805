"""Language-model pretraining: each direction predicts words it has not read, and a classifier starts
from exactly the encoder the language model trained."""

import pytest
import torch

from sentikit.checkpoint import load_classifier, read_checkpoint
from sentikit.encoder import RecurrentEncoder
from sentikit.errors import ConfigError
from sentikit.gates import reversal_index
from sentikit.language_model import LanguageModel, load_pretrained
from sentikit.model import SentimentClassifier
from sentikit.tokenizer import save_tokenizer, train_tokenizer
from test_cli import sentikit

ARCH = dict(cell="gru", embedding_dim=8, hidden_size=6, num_layers=3, bidirectional=True)


def batch(lengths: list[int], vocab: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    ids = torch.randint(2, vocab, (len(lengths), int(lengths.max())), generator=generator)
    ids[torch.arange(ids.shape[1])[None, :] >= lengths[:, None]] = 0
    return ids, lengths


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_each_direction_s_state_has_not_read_the_word_it_predicts(cell):
    """Changing the words from position 5 on leaves the forward stack's states before 5 as they were,
    and changing the words up to 5 leaves the backward stack's states after 5 (in text order): through
    every layer, though a bidirectional layer above the first mixes both directions."""
    torch.manual_seed(0)
    encoder = RecurrentEncoder(4, cell=cell, hidden_size=5, num_layers=3, bidirectional=True).eval()
    x, lengths = torch.randn(2, 9, 4), torch.tensor([9, 8])
    changed = x.clone()
    changed[:, 5:] = torch.randn(2, 4, 4)
    before, after = encoder.one_way_outputs(x, lengths, 0), encoder.one_way_outputs(changed, lengths, 0)
    assert torch.equal(before[:, :5], after[:, :5]) and not torch.allclose(before[:, 5:8], after[:, 5:8])

    changed = x.clone()
    changed[:, :6] = torch.randn(2, 6, 4)
    index = reversal_index(lengths, 9)[:, :, None].expand(-1, -1, 5)  # reading order -> text order
    before = encoder.one_way_outputs(x, lengths, 1).gather(1, index)
    after = encoder.one_way_outputs(changed, lengths, 1).gather(1, index)
    assert torch.equal(before[0, 6:], after[0, 6:]) and torch.equal(before[1, 6:8], after[1, 6:8])
    assert not torch.allclose(before[:, :6], after[:, :6])


def test_a_padded_review_scores_as_it_does_alone():
    torch.manual_seed(0)
    model = LanguageModel(50, **ARCH).eval()
    ids, lengths = batch([7, 4])
    together = model(ids, lengths)
    alone = [model(ids[i : i + 1, : lengths[i]], lengths[i : i + 1]) for i in range(2)]
    words = (lengths - 1).float()  # words predicted per review, in each direction
    assert torch.allclose(together, (torch.stack(alone) * words).sum() / words.sum(), atol=1e-6)


def test_reviews_of_one_word_predict_nothing_and_cost_nothing():
    model = LanguageModel(50, **ARCH)
    loss = model(*batch([1, 1]))
    assert loss.item() == 0 and loss.requires_grad  # not nan: training goes on


def test_the_language_model_learns_what_follows_what():
    """A corpus where each word determines the next: the loss falls far below a uniform guess's."""
    torch.manual_seed(0)
    model = LanguageModel(12, cell="lstm", embedding_dim=8, hidden_size=16, num_layers=1, dropout=0.0, embedding_dropout=0.0)
    ids = (torch.arange(10)[None, :] + torch.arange(16)[:, None]) % 10 + 2  # 2 3 4 ... 11 2 3 ...
    lengths = torch.full((16,), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        optimizer.zero_grad()
        loss = model(ids, lengths)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * torch.log(torch.tensor(12.0)).item()


def test_a_classifier_starts_from_the_two_stacks_the_language_model_trained(tmp_path):
    """After `init_from`, the classifier's bidirectional encoder outputs, at every position, the forward
    and the backward stack of the language model side by side: the mixing columns start at zero."""
    torch.manual_seed(0)
    language_model = LanguageModel(50, **ARCH).eval()
    path = tmp_path / "lm.ckpt"
    torch.save({"state_dict": language_model.state_dict(), "hyper_parameters": dict(language_model.hparams)}, path)
    classifier = SentimentClassifier(50, ["neg", "pos"], **ARCH, init_from=str(path)).eval()
    assert torch.equal(classifier.embedding.weight, language_model.embedding.weight)

    ids, lengths = batch([7, 4])
    embedded = language_model.embedding(ids)
    index = reversal_index(lengths, ids.shape[1])[:, :, None].expand(-1, -1, 6)
    expected = torch.cat(
        [language_model.encoder.one_way_outputs(embedded, lengths, 0), language_model.encoder.one_way_outputs(embedded, lengths, 1).gather(1, index)],
        dim=-1,
    )
    outputs = classifier.encoder.unpacked_outputs(classifier.embedding(ids), lengths)
    valid = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
    assert torch.allclose(outputs[valid], expected[valid], atol=1e-6)
    assert "init_from" not in classifier.hparams  # its checkpoints rebuild without the language model's file


def test_a_classifier_of_another_shape_is_refused_naming_what_differs(tmp_path):
    language_model = LanguageModel(50, **ARCH)
    path = tmp_path / "lm.ckpt"
    torch.save({"state_dict": language_model.state_dict(), "hyper_parameters": dict(language_model.hparams)}, path)
    with pytest.raises(ConfigError, match="hidden_size 6 there, 8 here"):
        SentimentClassifier(50, ["neg", "pos"], **{**ARCH, "hidden_size": 8}, init_from=str(path))


def test_a_classifier_checkpoint_is_not_a_language_model(tmp_path):
    classifier = SentimentClassifier(50, ["neg", "pos"], **ARCH)
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": classifier.state_dict(), "hyper_parameters": dict(classifier.hparams)}, path)
    with pytest.raises(ConfigError, match="not a sentikit language model"):
        load_pretrained(SentimentClassifier(50, ["neg", "pos"], **ARCH), read_checkpoint(path), str(path))


@pytest.mark.slow
def test_pretrain_then_fit_from_it_then_test_without_it(small_sst2, tmp_path):
    """The whole route on the command line: `sentikit pretrain`, `sentikit fit --model.init_from`, which
    reuses the language model's tokenizer, and a classifier checkpoint that stands on its own."""
    files = f"{{train: {small_sst2['train']}, validation: {small_sst2['validation']}, test: {small_sst2['test']}}}"
    common = ["-c", "configs/quickstart.yaml", "--data.data_files", files, "--trainer.limit_train_batches", "10", "--trainer.callbacks", "[]"]
    pretrained = sentikit("pretrain", *common, "--data.vocab_size", "500", "--trainer.default_root_dir", str(tmp_path / "lm"))
    assert pretrained.returncode == 0, pretrained.stderr[-3000:]
    language_model = next((tmp_path / "lm").rglob("best.ckpt"))  # the lowest validation loss
    assert f"--model.init_from {language_model}" in pretrained.stdout  # the next command is printed
    assert any("'monitor': 'val_loss'" in key for key in read_checkpoint(language_model)["callbacks"])  # not val_acc

    # A vocabulary size that would train another tokenizer: the language model's is read instead.
    run = ["--trainer.default_root_dir", str(tmp_path / "classifier")]
    fitted = sentikit("fit", *common, *run, "--data.vocab_size", "800", "--model.init_from", str(language_model))
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    assert f"read 500 tokens from {language_model}" in fitted.stderr
    last = next((tmp_path / "classifier").rglob("last.ckpt"))

    other = save_tokenizer(train_tokenizer([["a review", "another review"]], vocab_size=500), tmp_path / "other.json")
    refused = sentikit("fit", *common, *run, "--model.init_from", str(language_model), "--data.tokenizer_file", str(other))
    assert refused.returncode == 2 and "numbers words differently from the language model" in refused.stderr, refused.stderr[-2000:]

    language_model.unlink()
    assert load_classifier(last).tokenizer.get_vocab_size() == 500
    tested = sentikit("test", *common, *run, "--model.init_from", str(language_model), "--ckpt_path", str(last))
    assert tested.returncode == 0 and "test_acc" in tested.stdout, tested.stderr[-3000:]

    missing = sentikit("fit", *common, *run, "--model.init_from", str(language_model))
    assert missing.returncode == 2 and f"language model checkpoint not found (model.init_from): {language_model}" in missing.stderr


@pytest.mark.slow
def test_a_mistyped_pretrain_option_is_one_line_pointing_at_pretrain_help():
    result = sentikit("pretrain", "-c", "configs/quickstart.yaml", "--model.celll", "gru")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sentikit: error: unrecognized arguments: --model.celll gru (`sentikit pretrain --help` lists the options)"
    ]

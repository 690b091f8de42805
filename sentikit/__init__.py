"""sentikit: train RNN, LSTM and GRU sentiment classifiers and see what their gates keep."""

__version__ = "0.1.0"

"""Sequence models: RNN/LSTM/GRU, attention, Transformer blocks, GPT, BERT."""

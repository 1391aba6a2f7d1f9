"""Helpers the test modules share: stores and configs (`stores`), throwaway servers (`services`)."""

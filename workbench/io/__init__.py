"""Readers and writers. Every reader validates what it reads and raises ``InputError``."""

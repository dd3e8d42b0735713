"""The pure core: messages, codec and the queue's rules. No I/O, no clock of its own."""

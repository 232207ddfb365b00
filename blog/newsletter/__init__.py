"""The newsletter: subscribers (double opt-in), each post sent once to every confirmed
subscriber, one-click unsubscribe."""

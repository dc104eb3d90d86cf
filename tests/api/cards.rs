//! Smart cards: filled in by the cards work.

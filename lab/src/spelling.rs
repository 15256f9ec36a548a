//! The closest known word to a misspelt one, for "did you mean" hints.

/// The closest of `known` keys to `key`, if it is close enough to be a typo.
pub fn closest_key<'k>(key: &str, known: impl IntoIterator<Item = &'k String>) -> Option<&'k str> {
    closest(key, known.into_iter().map(String::as_str))
}

/// The closest of `known` to `word`, if it is close enough to be a typo.
pub fn closest<'k>(word: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(word, k), k))
        .filter(|(score, _)| *score > 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

//! Banned words and patterns, matched after normalisation so the usual evasions fail:
//! case, accents, leetspeak, look-alike letters from other scripts, repeated letters, and
//! letters spaced or dotted apart.

use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

/// Map one character to the ASCII letter it imitates, if any.
fn fold(c: char) -> char {
    match c {
        // Leetspeak.
        '0' => 'o',
        '1' | '!' | '|' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' | '+' => 't',
        '8' => 'b',
        '9' => 'g',
        // Cyrillic and Greek look-alikes (the common confusables).
        'а' | 'α' => 'a',
        'в' | 'β' => 'b',
        'с' | 'ϲ' => 'c',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ι' | 'ı' => 'i',
        'ј' => 'j',
        'к' | 'κ' => 'k',
        'м' => 'm',
        'н' | 'η' => 'n',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'т' | 'τ' => 't',
        'υ' => 'u',
        'ν' => 'v',
        'ѡ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        'ʐ' => 'z',
        other => other,
    }
}

/// Symbols that stand in for letters only inside a word (`b@d`, `$hit`), never at its end
/// (`words!` keeps its exclamation mark as punctuation).
fn is_leet_symbol(c: char) -> bool {
    matches!(c, '!' | '|' | '@' | '$' | '+')
}

/// Lower-case, strip accents (NFKD minus combining marks, so fullwidth and styled letters
/// collapse too), fold look-alikes, and split into words; runs of single letters ("f u c k",
/// "f.u.c.k") become one word.
pub fn fold_words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let letter =
            c.is_alphanumeric() || (is_leet_symbol(c) && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric()));
        if letter {
            cur.push(fold(c));
        } else if !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut joined: Vec<String> = Vec::with_capacity(words.len());
    let mut run = String::new();
    for w in words {
        if w.chars().count() == 1 {
            run.push_str(&w);
        } else {
            if !run.is_empty() {
                joined.push(std::mem::take(&mut run));
            }
            joined.push(w);
        }
    }
    if !run.is_empty() {
        joined.push(run);
    }
    joined
}

/// `fold_words`, with runs of one letter squeezed to one (`baaaad` -> `bad`): what banned
/// words and flood detection compare.
pub fn normalize(text: &str) -> Vec<String> {
    fold_words(text).iter().map(|w| squeeze(w)).collect()
}

fn squeeze(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut last = None;
    for c in s.chars() {
        if last != Some(c) {
            out.push(c);
        }
        last = Some(c);
    }
    out
}

/// A compiled rule set for one room (its channel's rules plus the global ones).
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// Normalised banned words and phrases (a phrase is several words in a row).
    words: Vec<Vec<String>>,
    regexes: Vec<regex::Regex>,
}

impl Filters {
    /// Build from `(pattern, is_regex)` rules; an invalid regex is skipped with a warning
    /// (rules are validated when they are created, so this only guards old data).
    pub fn new<'a>(rules: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let mut f = Self::default();
        for (pattern, is_regex) in rules {
            if is_regex {
                match regex::RegexBuilder::new(pattern).case_insensitive(true).size_limit(1 << 20).build() {
                    Ok(r) => f.regexes.push(r),
                    Err(e) => tracing::warn!(pattern, error = %e, "skipping invalid chat filter regex"),
                }
            } else {
                let words = normalize(pattern);
                if !words.is_empty() {
                    f.words.push(words);
                }
            }
        }
        f
    }

    /// Whether `text` breaks a rule. Regexes see the folded words joined by single spaces (and
    /// the raw text).
    pub fn matches(&self, text: &str) -> bool {
        let words = normalize(text);
        let found = self.words.iter().any(|phrase| words.windows(phrase.len()).any(|w| w == phrase.as_slice()));
        if found {
            return true;
        }
        if self.regexes.is_empty() {
            return false;
        }
        let folded = fold_words(text).join(" ");
        self.regexes.iter().any(|r| r.is_match(&folded) || r.is_match(text))
    }
}

/// Whether the text contains something a browser would make a link of.
pub fn has_link(text: &str) -> bool {
    let lower = text.to_lowercase();
    if lower.contains("http://") || lower.contains("https://") || lower.contains("www.") {
        return true;
    }
    // bare domains: word.tld
    lower.split_whitespace().any(|w| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        match w.rsplit_once('.') {
            Some((host, tld)) => {
                !host.is_empty()
                    && (2..=6).contains(&tld.len())
                    && tld.chars().all(|c| c.is_ascii_alphabetic())
                    && ["com", "net", "org", "io", "gg", "tv", "ly", "co", "me", "xyz", "ru", "de", "uk", "app", "dev"]
                        .contains(&tld)
            }
            None => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evasions_of_a_banned_word_are_caught() {
        let f = Filters::new([("badword", false), ("two words", false)]);
        for evasion in [
            "badword",
            "BadWord",
            "this is a badword here",
            "bádwörd",
            "b4dw0rd",
            "b@dw0rd",
            "baaaadwoooord",
            "b a d w o r d",
            "b.a.d.w.o.r.d",
            "b-a-d-w-o-r-d",
            "bаdwоrd",        // Cyrillic а and о
            "ｂａｄｗｏｒｄ", // fullwidth
            "𝐛𝐚𝐝𝐰𝐨𝐫𝐝",        // mathematical bold
            "ok TWO   words!",
        ] {
            assert!(f.matches(evasion), "{evasion} slipped through");
        }
        for fine in ["bad word choice", "badwords are plural here", "a good sentence", "two", "words two"] {
            assert!(!f.matches(fine), "{fine} was wrongly blocked");
        }
    }

    #[test]
    fn regexes_see_normalised_text() {
        let f = Filters::new([(r"free\s*v\s*bucks", true), ("(", true)]);
        assert!(f.matches("FREE VBUCKS here"));
        assert!(f.matches("fr33 v-bucks"));
        assert!(!f.matches("free speech"));
    }

    #[test]
    fn links() {
        for l in ["see https://x.io", "www.example.org", "go to scam.com now", "EVIL.GG"] {
            assert!(has_link(l), "{l}");
        }
        for n in ["no links here", "3.14 is pi", "e.g. this", "end."] {
            assert!(!has_link(n), "{n}");
        }
    }
}

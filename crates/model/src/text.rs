//! Words for messages people read: a count with its noun in the right number ("1 group",
//! "2 groups"), so no message says "group(s)".

/// `n` followed by `one` when `n` is 1, else by `many`.
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(counted(1, "group", "groups"), "1 group");
        assert_eq!(counted(0, "group", "groups"), "0 groups");
        assert_eq!(counted(2, "Duo user is", "Duo users are"), "2 Duo users are");
    }
}

//! NFSv4 owners (`owner`, `owner_group` strings) to numeric ids. Numeric strings (`1000`, as
//! servers send with numeric owners enabled) are ids already; names (`alice@example.com`) are
//! looked up in the user's map (`--idmap FILE`), first whole, then without `@domain`. A name
//! is also kept as it is (the record's `owner` / `group`): the map is the user's word, the
//! name the server's, and a name without a map entry would otherwise be lost in `nobody`.

use crate::rpc::nfs4::Owner;
use std::collections::HashMap;
use std::path::Path;
use thiserror::Error;

/// The id of an owner name that is neither numeric nor in the map (Linux's idmapd answers
/// `nobody` the same way).
pub const NOBODY_ID: u32 = 65534;
/// Lines accepted in a map file: a user-written file, not a directory dump.
pub const IDMAP_LINES_MAX: usize = 1_000_000;

#[derive(Debug, Error)]
pub enum IdMapError {
    #[error("reading id map {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("id map {path} line {line}: expected `NAME ID` with a numeric ID")]
    Syntax { path: String, line: usize },
    #[error("id map {path} has more than {IDMAP_LINES_MAX} lines")]
    TooLong { path: String },
}

/// Owner name → id.
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    ids: HashMap<Vec<u8>, u32>,
}

impl IdMap {
    pub fn load(path: &Path) -> Result<Self, IdMapError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| IdMapError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Syntax(line) => IdMapError::Syntax { path: shown, line },
            ParseError::TooLong => IdMapError::TooLong { path: shown },
        })
    }

    fn parse(text: &[u8]) -> Result<Self, ParseError> {
        let mut ids = HashMap::new();
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if i >= IDMAP_LINES_MAX {
                return Err(ParseError::TooLong);
            }
            let line = line.split(|&b| b == b'#').next().unwrap_or_default();
            let mut words = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|w| !w.is_empty());
            let (Some(name), id) = (words.next(), words.next()) else {
                continue;
            };
            let id = match (id.map(Owner::parse), words.next()) {
                (Some(Owner::Id(id)), None) => id,
                _ => return Err(ParseError::Syntax(i + 1)),
            };
            ids.insert(name.to_vec(), id);
        }
        Ok(IdMap { ids })
    }

    /// The id of an `owner` / `owner_group` string, and the name to keep in the record: the
    /// string itself where it is a name, none where it is a number (the id says it all) or
    /// empty (the server sent no owner).
    pub fn resolve<'a>(&self, owner: &'a [u8]) -> (u32, Option<&'a [u8]>) {
        match Owner::parse(owner) {
            Owner::Id(id) => (id, None),
            Owner::Name(name) => {
                let local = name.split(|&b| b == b'@').next().unwrap_or(name);
                let id = self
                    .ids
                    .get(name)
                    .or_else(|| self.ids.get(local))
                    .copied()
                    .unwrap_or(NOBODY_ID);
                (id, (!name.is_empty()).then_some(name))
            }
        }
    }
}

enum ParseError {
    Syntax(usize),
    TooLong,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_owners_need_no_map_and_names_are_looked_up() {
        let map = IdMap::parse(b"# users\nalice 1000\nstaff@example.com 50  # a group\n\n")
            .ok()
            .unwrap();
        assert_eq!(map.resolve(b"42"), (42, None));
        assert_eq!(map.resolve(b"alice"), (1000, Some(&b"alice"[..])));
        assert_eq!(
            map.resolve(b"alice@example.com"),
            (1000, Some(&b"alice@example.com"[..]))
        );
        assert_eq!(
            map.resolve(b"staff@example.com"),
            (50, Some(&b"staff@example.com"[..]))
        );
        assert_eq!(
            map.resolve(b"bob@example.com"),
            (NOBODY_ID, Some(&b"bob@example.com"[..]))
        );
        assert_eq!(map.resolve(b""), (NOBODY_ID, None));
        assert!(matches!(
            IdMap::parse(b"alice x\n"),
            Err(ParseError::Syntax(1))
        ));
        assert!(matches!(
            IdMap::parse(b"ok 1\nalice 1 2\n"),
            Err(ParseError::Syntax(2))
        ));
    }
}

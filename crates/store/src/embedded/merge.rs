//! Read-your-writes for range scans: merges the entries of a snapshot with a transaction's
//! buffered writes, in scan order, up to a limit.

use std::cmp::Ordering;

use crate::error::StoreError;
use crate::traits::Entry;

/// A buffered write: `Some(value)` for a put, `None` for a delete.
pub(crate) type Pending = (Vec<u8>, Option<Vec<u8>>);

/// Merges `snapshot` (entries in scan order) with `pending` (buffered writes of the same range,
/// in ascending key order): a buffered write of a key replaces the snapshot's entry, a buffered
/// delete hides it. Stops after `limit` entries, reading no further from the snapshot.
pub(crate) fn merge<I>(
    snapshot: I,
    pending: Vec<Pending>,
    reverse: bool,
    limit: Option<usize>,
) -> Result<Vec<Entry>, StoreError>
where
    I: Iterator<Item = Result<Entry, StoreError>>,
{
    let limit = limit.unwrap_or(usize::MAX);
    let mut snapshot = snapshot.peekable();
    let mut pending: Box<dyn Iterator<Item = Pending>> = if reverse {
        Box::new(pending.into_iter().rev())
    } else {
        Box::new(pending.into_iter())
    };
    let mut pending = pending.by_ref().peekable();
    let mut out = Vec::new();

    while out.len() < limit {
        if let Some(Err(_)) = snapshot.peek()
            && let Some(Err(error)) = snapshot.next()
        {
            return Err(error);
        }
        // Which side holds the next key in scan order; on a tie the buffered write wins.
        let (from_snapshot, from_pending) = match (snapshot.peek(), pending.peek()) {
            (None, None) => break,
            (Some(_), None) => (true, false),
            (None, Some(_)) => (false, true),
            (Some(Ok((stored, _))), Some((written, _))) => {
                let order = if reverse {
                    written.cmp(stored)
                } else {
                    stored.cmp(written)
                };
                match order {
                    Ordering::Less => (true, false),
                    Ordering::Equal => (true, true),
                    Ordering::Greater => (false, true),
                }
            }
            (Some(Err(_)), Some(_)) => (true, false),
        };
        let stored = if from_snapshot {
            snapshot.next().transpose()?
        } else {
            None
        };
        if from_pending {
            if let Some((key, Some(value))) = pending.next() {
                out.push((key, value));
            }
        } else if let Some(entry) = stored {
            out.push(entry);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(keys: &[&str]) -> Vec<Result<Entry, StoreError>> {
        keys.iter()
            .map(|key| Ok((key.as_bytes().to_vec(), b"old".to_vec())))
            .collect()
    }

    fn put(key: &str) -> Pending {
        (key.as_bytes().to_vec(), Some(b"new".to_vec()))
    }

    fn delete(key: &str) -> Pending {
        (key.as_bytes().to_vec(), None)
    }

    fn render(entries: Vec<Entry>) -> Vec<String> {
        entries
            .into_iter()
            .map(|(key, value)| {
                format!(
                    "{}={}",
                    String::from_utf8(key).unwrap(),
                    String::from_utf8(value).unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn writes_replace_and_deletes_hide_snapshot_entries() {
        let pending = vec![put("a"), delete("b"), put("c"), delete("z")];
        let merged = merge(stored(&["b", "c", "d"]).into_iter(), pending, false, None).unwrap();
        assert_eq!(render(merged), ["a=new", "c=new", "d=old"]);
    }

    #[test]
    fn reverse_order_and_limit() {
        let pending = vec![put("a"), delete("c")];
        let snapshot = stored(&["d", "c", "b"]); // a reverse scan hands them in descending order
        let merged = merge(snapshot.into_iter(), pending, true, Some(2)).unwrap();
        assert_eq!(render(merged), ["d=old", "b=old"]);
    }

    #[test]
    fn a_storage_error_is_returned() {
        let snapshot = vec![
            Ok((b"a".to_vec(), b"1".to_vec())),
            Err(StoreError::Corruption("bad page".into())),
        ];
        let merged = merge(snapshot.into_iter(), vec![put("b")], false, None);
        assert!(matches!(merged, Err(StoreError::Corruption(_))));
    }

    #[test]
    fn stops_reading_the_snapshot_at_the_limit() {
        let mut reads = 0;
        let snapshot = (0..1_000).map(|i: u32| {
            reads += 1;
            Ok((i.to_be_bytes().to_vec(), Vec::new()))
        });
        let merged = merge(snapshot, Vec::new(), false, Some(3)).unwrap();
        assert_eq!(merged.len(), 3);
        assert!(reads <= 4, "read {reads} entries for a limit of 3");
    }
}

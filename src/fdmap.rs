//! A table indexed by descriptor number, allocated in chunks.
//!
//! Descriptor numbers are small and dense, so indexing beats hashing; but a
//! flat vector grown by doubling holds up to twice the slots in use, and a
//! slot for every number below the highest, including the many that
//! kqring never sees (a server's listening sockets, files, its peers' ends
//! in tests). Chunks of [`CHUNK`] slots, made when a number in them is
//! first used, bound both: memory follows the numbers kqring touches.

/// Slots per chunk.
const CHUNK: usize = 64;

/// Per-descriptor state of type `T`, created as `T::default()` on first use.
pub(crate) struct FdMap<T> {
    chunks: Vec<Option<Box<[T]>>>,
}

impl<T> std::fmt::Debug for FdMap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = self.chunks.iter().filter(|c| c.is_some()).count();
        f.debug_struct("FdMap").field("chunks", &made).finish()
    }
}

impl<T> Default for FdMap<T> {
    fn default() -> FdMap<T> {
        FdMap { chunks: Vec::new() }
    }
}

impl<T: Default> FdMap<T> {
    fn place(fd: i32) -> Option<(usize, usize)> {
        let i = usize::try_from(fd).ok()?;
        Some((i / CHUNK, i % CHUNK))
    }

    /// The slot of `fd`, if it was ever made.
    pub(crate) fn get(&self, fd: i32) -> Option<&T> {
        let (c, i) = Self::place(fd)?;
        self.chunks.get(c)?.as_ref().map(|chunk| &chunk[i])
    }

    /// The slot of `fd`, if it was ever made.
    pub(crate) fn get_mut(&mut self, fd: i32) -> Option<&mut T> {
        let (c, i) = Self::place(fd)?;
        self.chunks.get_mut(c)?.as_mut().map(|chunk| &mut chunk[i])
    }

    /// The slot of `fd`, made if needed; `None` for a negative number.
    pub(crate) fn entry(&mut self, fd: i32) -> Option<&mut T> {
        let (c, i) = Self::place(fd)?;
        if c >= self.chunks.len() {
            self.chunks.resize_with(c + 1, || None);
        }
        let chunk =
            self.chunks[c].get_or_insert_with(|| (0..CHUNK).map(|_| T::default()).collect());
        Some(&mut chunk[i])
    }

    /// Every slot made so far, with its descriptor number.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (i32, &mut T)> {
        self.chunks
            .iter_mut()
            .enumerate()
            .filter_map(|(c, chunk)| Some((c, chunk.as_mut()?)))
            .flat_map(|(c, chunk)| {
                chunk
                    .iter_mut()
                    .enumerate()
                    .map(move |(i, slot)| ((c * CHUNK + i) as i32, slot))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_made_per_chunk_on_first_use() {
        let mut map: FdMap<u32> = FdMap::default();
        assert!(map.get(5).is_none() && map.entry(-1).is_none());
        *map.entry(5).unwrap() = 50;
        *map.entry(1000).unwrap() = 10;
        assert_eq!(map.get(5), Some(&50));
        assert_eq!(map.get(6), Some(&0), "same chunk: made with it");
        assert_eq!(map.get(200), None, "chunks in between are not made");
        assert_eq!(map.get_mut(1000).copied(), Some(10));
        let made: Vec<i32> = map.iter_mut().map(|(fd, _)| fd).collect();
        assert_eq!(made.len(), 2 * CHUNK);
        assert_eq!((made[0], made[CHUNK]), (0, 960));
    }
}

//! The map presence keeps per ticket (its viewers), per viewer (its
//! sockets) and per socket (its tickets): almost always one entry, rarely
//! more than a handful. A vector searched linearly, its first entry inline:
//! one viewer on one ticket through one socket costs no allocation of its
//! own, where each `HashMap` allocated room for four entries at its first
//! insert (about 850 bytes per idle viewer, measured with heaptrack).

use smallvec::SmallVec;

#[derive(Debug, Clone)]
pub struct SmallMap<K, V>(SmallVec<[(K, V); 1]>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self(SmallVec::new())
    }
}

impl<K: Eq, V> SmallMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, key: &K) -> Option<usize> {
        self.0.iter().position(|(k, _)| k == key)
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.position(key).is_some()
    }

    /// Inserts or replaces; the value replaced, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            None => {
                self.0.push((key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.position(key)?;
        let (_, value) = self.0.swap_remove(i);
        if self.0.spilled() && self.0.len() <= self.0.capacity() / 4 {
            self.0.shrink_to_fit();
        }
        Some(value)
    }

    /// The value of `key`, inserted with `V::default()` when missing.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let i = match self.position(&key) {
            Some(i) => i,
            None => {
                self.0.push((key, V::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let mut m = SmallMap::new();
        assert!(m.is_empty());
        assert_eq!(m.insert("a", 1), None);
        assert_eq!(m.insert("b", 2), None);
        assert_eq!(m.insert("a", 3), Some(1));
        assert_eq!((m.len(), m.get(&"a"), m.get(&"c")), (2, Some(&3), None));
        *m.get_or_default("c") += 5;
        *m.get_mut(&"b").unwrap() += 1;
        let mut all: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
        all.sort();
        assert_eq!(all, [("a", 3), ("b", 3), ("c", 5)]);
        assert_eq!(m.remove(&"a"), Some(3));
        assert_eq!(m.remove(&"a"), None);
        assert!(m.contains_key(&"c") && !m.contains_key(&"a"));
        assert_eq!(m.keys().count(), 2);
    }
}

//! [`Locals`]: the values of a pipeline that its handlers share by type
//! (`Context::local`, Netty's channel attributes).
//!
//! Contract:
//! - one value per type, created with `Default` the first time it is asked
//!   for, dropped with the pipeline;
//! - it costs a pipeline that never uses it one pointer; a lookup is a
//!   scan of the few types in use (a pipeline holds a handful at most).

use std::any::{Any, TypeId};

/// One local: its type and its value.
type Entry = (TypeId, Box<dyn Any + Send>);

/// See the module contract.
#[derive(Default)]
#[allow(clippy::box_collection)] // deliberate: 8 bytes per channel instead of 24
pub(crate) struct Locals(Option<Box<Vec<Entry>>>);

impl Locals {
    /// The value of type `T`, created if it is the first time.
    pub(crate) fn get<T: Default + Send + 'static>(&mut self) -> &mut T {
        let list = self.0.get_or_insert_with(Default::default);
        let at = match list.iter().position(|(t, _)| *t == TypeId::of::<T>()) {
            Some(i) => i,
            None => {
                list.push((TypeId::of::<T>(), Box::new(T::default())));
                list.len() - 1
            }
        };
        match list[at].1.downcast_mut::<T>() {
            Some(v) => v,
            // Keyed by its own type id, the value is always a `T`.
            None => unreachable!("a pipeline local stored under another type's id"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type_created_once() {
        let mut l = Locals::default();
        *l.get::<u32>() += 2;
        *l.get::<u64>() += 5;
        *l.get::<u32>() += 1;
        assert_eq!(*l.get::<u32>(), 3);
        assert_eq!(*l.get::<u64>(), 5);
        assert_eq!(l.0.as_ref().map(|v| v.len()), Some(2));
    }
}

//! Byte-exact encoding of ABI structures, without `unsafe`.
//!
//! Guest memory reaches the hypervisor as bytes, through one checked accessor. This module turns
//! such bytes into the typed structures of this crate and back:
//!
//! - [`Wire`] is the public face: `read_from` decodes a structure from the first `SIZE` bytes of a
//!   slice, `write_to` encodes it into the first `SIZE` bytes of a slice. A slice that is too
//!   short is a [`ShortBuffer`] error, never a panic.
//! - `Field` is the crate-internal building block: one little-endian scalar, an array of fields,
//!   or a nested structure, read or written at the start of a slice the caller has already
//!   checked to be long enough.
//! - `abi_struct!` declares a structure once: its fields with their byte offsets. It derives the
//!   Rust type, pins its size and every offset with compile-time asserts (`offset_of!`), and
//!   implements `Field`, [`Wire`] and `Default` (all zero) from the same table.
//!
//! Invariant: `write_to` zeroes the whole `SIZE`-byte range before it stores the fields, so padding
//! bytes are always 0 and an encoded structure never carries stale hypervisor bytes into guest
//! memory. All encodings are little-endian, the byte order of x86-64.

use core::mem::size_of;

/// The slice handed to [`Wire::read_from`] or [`Wire::write_to`] is shorter than the structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortBuffer {
    /// Bytes the structure needs.
    pub needed: usize,
    /// Bytes the slice had.
    pub got: usize,
}

/// A fixed-size ABI structure with a byte-exact little-endian encoding.
pub trait Wire: Sized {
    /// Size in bytes of the C structure (equal to `size_of::<Self>()`).
    const SIZE: usize;

    /// Decodes the structure from the first `SIZE` bytes of `bytes`; extra bytes are ignored.
    fn read_from(bytes: &[u8]) -> Result<Self, ShortBuffer>;

    /// Encodes the structure into the first `SIZE` bytes of `out` (padding written as 0); bytes
    /// after `SIZE` are left alone.
    fn write_to(&self, out: &mut [u8]) -> Result<(), ShortBuffer>;
}

/// Returns `Ok(())` when a slice of `got` bytes can hold a structure of `needed` bytes.
pub(crate) const fn check_len(needed: usize, got: usize) -> Result<(), ShortBuffer> {
    if got < needed {
        Err(ShortBuffer { needed, got })
    } else {
        Ok(())
    }
}

/// One field of an ABI structure: a value stored in `size_of::<Self>()` bytes.
///
/// Callers guarantee `bytes.len() >= size_of::<Self>()`; `Wire` checks the length once, at the top,
/// and every nested access stays inside that checked range.
pub(crate) trait Field: Sized {
    /// Reads the value from the start of `bytes`.
    fn get(bytes: &[u8]) -> Self;
    /// Writes the value to the start of `bytes`.
    fn put(&self, bytes: &mut [u8]);
}

macro_rules! int_field {
    ($($t:ty),* $(,)?) => {$(
        impl Field for $t {
            fn get(bytes: &[u8]) -> Self {
                let mut raw = [0u8; size_of::<$t>()];
                raw.copy_from_slice(&bytes[..size_of::<$t>()]);
                <$t>::from_le_bytes(raw)
            }

            fn put(&self, bytes: &mut [u8]) {
                bytes[..size_of::<$t>()].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}

int_field!(u8, i8, u16, u32, i32, u64);

/// Arrays are stored element after element with a stride of `size_of::<T>()`, as in C.
impl<T: Field, const N: usize> Field for [T; N] {
    fn get(bytes: &[u8]) -> Self {
        core::array::from_fn(|i| T::get(&bytes[i * size_of::<T>()..]))
    }

    fn put(&self, bytes: &mut [u8]) {
        for (i, elem) in self.iter().enumerate() {
            elem.put(&mut bytes[i * size_of::<T>()..]);
        }
    }
}

/// Declares a `#[repr(C)]` ABI structure from a table of fields and byte offsets.
///
/// ```text
/// abi_struct! {
///     /// docs
///     #[repr(C)]
///     pub struct Name, size 16 {
///         /// docs
///         pub a: u64 = 0,
///         pub b: u32 = 8,
///     }
/// }
/// ```
///
/// The offsets are the C header's and are asserted at compile time, as is the total size. Gaps
/// between fields are C padding: they read as ignored and are written as 0.
macro_rules! abi_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident, size $size:literal {
            $(
                $(#[$fmeta:meta])*
                pub $field:ident : $ty:ty = $off:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
        }

        const _: () = assert!(::core::mem::size_of::<$name>() == $size);
        $(
            const _: () = assert!(::core::mem::offset_of!($name, $field) == $off);
        )*

        impl $name {
            /// Size in bytes of the C structure.
            pub const SIZE: usize = $size;
        }

        impl $crate::wire::Field for $name {
            fn get(bytes: &[u8]) -> Self {
                Self {
                    $( $field: $crate::wire::Field::get(&bytes[$off..]), )*
                }
            }

            fn put(&self, bytes: &mut [u8]) {
                bytes[..$size].fill(0);
                $( $crate::wire::Field::put(&self.$field, &mut bytes[$off..]); )*
            }
        }

        impl $crate::wire::Wire for $name {
            const SIZE: usize = $size;

            #[inline]
            fn read_from(bytes: &[u8]) -> Result<Self, $crate::wire::ShortBuffer> {
                $crate::wire::check_len($size, bytes.len())?;
                Ok(<Self as $crate::wire::Field>::get(bytes))
            }

            fn write_to(&self, out: &mut [u8]) -> Result<(), $crate::wire::ShortBuffer> {
                $crate::wire::check_len($size, out.len())?;
                <Self as $crate::wire::Field>::put(self, out);
                Ok(())
            }
        }

        impl Default for $name {
            /// The all-zero structure.
            fn default() -> Self {
                <Self as $crate::wire::Field>::get(&[0u8; $size])
            }
        }
    };
}

pub(crate) use abi_struct;

#[cfg(test)]
mod tests {
    use super::*;

    abi_struct! {
        /// A structure with interior and trailing padding, to exercise the macro.
        #[repr(C)]
        pub struct Probe, size 24 {
            pub a: u8 = 0,
            pub b: u32 = 4,
            pub c: u64 = 8,
            pub d: [u16; 3] = 16,
        }
    }

    #[test]
    fn fields_land_at_their_offsets_little_endian() {
        let p = Probe {
            a: 0x11,
            b: 0x2233_4455,
            c: 0x0102_0304_0506_0708,
            d: [0xAABB, 1, 2],
        };
        let mut out = [0xEEu8; 26];
        p.write_to(&mut out).unwrap();
        assert_eq!(out[0], 0x11);
        assert_eq!(&out[1..4], &[0, 0, 0], "padding is zeroed");
        assert_eq!(&out[4..8], &[0x55, 0x44, 0x33, 0x22]);
        assert_eq!(&out[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&out[16..22], &[0xBB, 0xAA, 1, 0, 2, 0]);
        assert_eq!(&out[22..24], &[0, 0], "trailing padding is zeroed");
        assert_eq!(&out[24..], &[0xEE, 0xEE], "bytes past SIZE are untouched");
        assert_eq!(Probe::read_from(&out).unwrap(), p);
    }

    #[test]
    fn short_buffers_are_errors() {
        let mut out = [0u8; 23];
        assert_eq!(
            Probe::default().write_to(&mut out),
            Err(ShortBuffer {
                needed: 24,
                got: 23
            })
        );
        assert_eq!(
            Probe::read_from(&out),
            Err(ShortBuffer {
                needed: 24,
                got: 23
            })
        );
    }

    #[test]
    fn size_constants_agree() {
        assert_eq!(Probe::SIZE, 24);
        assert_eq!(<Probe as Wire>::SIZE, size_of::<Probe>());
    }

    #[test]
    fn default_is_all_zero() {
        assert_eq!(
            Probe::default(),
            Probe {
                a: 0,
                b: 0,
                c: 0,
                d: [0; 3]
            }
        );
    }
}

//! The DNS vocabulary mcw thinks in, apart from any client that speaks DNS: the question a
//! token asks ([`Query`]), the answer in mcw's canonical order ([`Answer`], [`Member`]), and why
//! there is none ([`Failure`]). Pure values and rules, no I/O: the engine and the template
//! import this, never [`crate::resolve`], which asks the servers.

mod answer;
mod failure;
mod query;

pub use answer::{Answer, Member, Records, SrvTarget, natural_cmp};
pub use failure::{Failure, Trouble, with_allow_empty};
pub use query::{Family, NameError, Query, validate_name};

//! faultline-dump against real Go output: the fixtures in tests/fixtures/go, made by
//! scripts/go-fixtures.sh from tests/targets/go/blocker with Go 1.19 and Go 1.27, default and
//! stripped builds. The facts checked here are the ones the fixtures' README states.
//!
//! `live` checks the same facts on the blocker built and run now with both toolchains; `props`
//! checks properties of parsing, grouping and diffing on generated and mutated input.

mod forms;
mod go;
mod live;
mod logs;
mod props;
mod rust;
mod tokio;

//! Integration tests of faultline-symbolize against real files and a real debuginfod.

mod corrupt;
mod debuginfod;
mod index;

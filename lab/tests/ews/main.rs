//! EWS, Autodiscover and Exchange management shell tests against a running lab.

mod autodiscover;
mod common;
mod exchangelib;
mod management;
mod online;
mod operations;
mod security;

//! The plugin lifecycle: packages (a component with its manifest inside), a node's plugin
//! store (install, use, upgrade, roll back, remove; every change recorded), trying a
//! candidate on recorded events before it goes live, and the dry run of `plugin check`.

pub mod api;
pub mod check;
pub mod library;
mod live;
pub mod manage;
pub mod manifest;
pub mod scaffold;
pub mod store;
pub mod trial;

pub use library::Library;
pub use live::NodePlugins;
pub use manifest::Manifest;

//! The scripted picker in a library with an initialiser ([`constructor`]): a compatible library,
//! so the initialiser runs when it is loaded.

#[path = "../../constructor.rs"]
mod constructor;
#[path = "../../scripted-picker/src/picker.rs"]
mod picker;

rivulet_core::export_picker!(picker::ScriptedPicker, "constructor", "0.0.1");

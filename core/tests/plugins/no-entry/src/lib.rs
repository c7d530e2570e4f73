//! The scripted picker exported without the `dynamic` feature: the macro must emit no descriptor
//! symbol, which is what lets several plugin crates link into one binary.

#[path = "../../scripted-picker/src/picker.rs"]
mod picker;

rivulet_core::export_picker!(picker::ScriptedPicker, "no-entry", "0.0.1");

//! The scripted picker as a loadable plugin.

mod picker;

rivulet_core::export_picker!(picker::ScriptedPicker, "scripted", "1.2.3");

mod lab;
mod lab_drills;
mod linux_loader;

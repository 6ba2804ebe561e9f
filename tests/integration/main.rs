mod lab;
mod lab_drills;

//! examples/kevent_loop.rs: its loop, run here as the example runs it,
//! sees the pipe's bytes, the timer and the user event triggered from the
//! other thread with the value that thread ORed in.

#[path = "../examples/kevent_loop.rs"]
#[allow(dead_code)]
mod example;

#[test]
fn the_loop_sees_the_pipe_the_timer_and_the_other_threads_wake_up() {
    let mut printed = Vec::new();
    let seen = example::run(&mut printed).expect("the loop runs");
    assert_eq!(seen.read, example::MESSAGE);
    assert!(seen.ticks >= 5, "{} expirations", seen.ticks);
    assert_eq!(seen.user, [example::WAKE_VALUE], "the user event, once");
    let printed = String::from_utf8(printed).expect("the loop prints text");
    assert!(printed.contains("woken by the other thread"), "{printed}");
    assert!(printed.contains("EVFILT_USER"), "{printed}");
    assert!(printed.contains("token: 30"), "the token stays: {printed}");
}

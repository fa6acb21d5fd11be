/*!
Wiring: which tasks and threads run, and the bounded queues between them.

```text
 weir tx (OT side)
   sources (tokio tasks) ──mpsc, tx.queue_events──► diode sender task ──UDP──► the diode

 weir rx (IT side)
   the diode ──UDP──► diode receiver task ──sync_channel, rx.queue_blocks──► sink thread ─┬► file/stdout
                                                                                          └► disk buffer per SIEM
                                                                                               ──► driver task ──► SIEM
```

Every queue is bounded. Overflow policy: UDP sources drop and count; TCP sources wait (TCP
pushes back on the sender); the diode receiver never waits on the sinks, it drops and counts.
*/

pub mod rx;
pub mod rx_state;
pub mod siem;
pub mod tx;

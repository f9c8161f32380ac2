"""Control of a run from outside the worker: launching, attaching and stopping (``launch``), the restart
policy and ``Supervisor.poll()`` that front ends drive (``supervisor``), the state of a run from its files
(``status``) and the names of those states (``states``). Never imports torch."""

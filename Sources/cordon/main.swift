import CordonCLI

// The `cordon` executable: its commands and the composition root are in CordonCLI.
await Cordon.runMain()

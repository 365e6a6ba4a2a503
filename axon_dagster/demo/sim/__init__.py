"""The simulated Axon recorder: synthetic recordings and the axon-sim RPC server."""

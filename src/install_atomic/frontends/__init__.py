"""Front ends: each turns one kind of input into staged trees and commits them
through the engine.  They may import the engine and the checks, never each other.
"""
